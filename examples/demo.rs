//! A conversation with the bundled fixture program and with `bc`, printing
//! both sides. Run it with `make demo`.

use std::path::PathBuf;
use std::time::Duration;

use duet::{Command, Pattern};

/// The fixture is built next to this example: target/<profile>/duet-fixture.
fn fixture() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("duet-fixture"))
        .expect("target directory")
}

fn say(who: &str, text: &str) {
    println!("  {who:>6} {text}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("duet-fixture calc, with a prompt:");
    let mut calc = Command::new(fixture())
        .arg("calc-prompt")
        .timeout(Duration::from_secs(5))
        .spawn()?;
    calc.expect(Pattern::exact("calc> "))?;
    say("child", "calc> ");
    for line in ["12 * 12", "7 - 10", "hello"] {
        say("duet", line);
        calc.send_line(line)?;
        let m = calc.expect(Pattern::exact("calc> "))?;
        say("child", m.before().trim_end());
    }
    calc.close_stdin()?;
    say("", &format!("fixture {}", calc.wait()?));

    println!("\nbc -q:");
    let mut bc = Command::new("bc").arg("-q").spawn()?;
    for question in ["2+2", "3*3", "scale=5; 22/7", "2^64"] {
        say("duet", question);
        say("bc", &bc.ask(question)?);
    }
    bc.close_stdin()?;
    say("", &format!("bc {}", bc.wait()?));

    println!("\nwhat a missing program looks like:");
    let err = Command::new("no-such-calculator").spawn().unwrap_err();
    say("error", &err.to_string());

    println!("\na reply that never comes (the fixture waits 10 s per line):");
    let mut slow = Command::new(fixture()).args(["slow", "10000"]).spawn()?;
    slow.send_line("anyone there?")?;
    let err = slow
        .read_line_timeout(Duration::from_millis(300))
        .unwrap_err();
    say("error", &err.to_string());
    Ok(())
}
