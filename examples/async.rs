//! Three programs driven at once from one task on one thread: bc works out
//! digits of pi, python3 evaluates expressions, and stockfish searches the
//! opening position. Each conversation waits on its own child; `join!`
//! interleaves them, so the slow chess search does not hold up the others.
//!
//! `cargo run --example async --features tokio` (needs bc, python3 and
//! stockfish; Debian puts stockfish in /usr/games).

use std::path::Path;
use std::time::{Duration, Instant};

use duet::{Command, Pattern};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let (digits, answers, best) = tokio::try_join!(bc(start), python(start), stockfish(start))?;
    println!("\nbc: pi = {digits}");
    println!("python3: {}", answers.join(", "));
    println!("stockfish: best opening move {best}");
    Ok(())
}

fn log(start: Instant, who: &str, what: &str) {
    println!("{:7.3}s {who:>9}  {what}", start.elapsed().as_secs_f64());
}

/// Pi to more and more digits; the last answer is the result.
async fn bc(start: Instant) -> duet::Result<String> {
    let mut bc = Command::new("bc").arg("-ql").spawn_async()?;
    let mut last = String::new();
    for scale in [10, 100, 1000] {
        bc.send_line(&format!("scale={scale}; 4*a(1)")).await?;
        // bc breaks long numbers with `\` at the end of each line.
        let mut number = String::new();
        loop {
            let line = bc.read_line().await?;
            match line.strip_suffix('\\') {
                Some(part) => number.push_str(part),
                None => {
                    number.push_str(&line);
                    break;
                }
            }
        }
        log(start, "bc", &format!("{scale} digits"));
        last = number;
    }
    bc.close_stdin().await?;
    bc.wait().await?;
    Ok(format!("{}…", &last[..40]))
}

/// One expression per line, evaluated by a small Python loop.
async fn python(start: Instant) -> duet::Result<Vec<String>> {
    let script = "import sys\nfor line in sys.stdin:\n    print(eval(line), flush=True)";
    let mut py = Command::new("python3").args(["-c", script]).spawn_async()?;
    let mut answers = Vec::new();
    for expr in ["2**100", "sum(range(10**6))", "sorted('duet')"] {
        let answer = py.ask(expr).await?;
        log(start, "python3", &format!("{expr} = {answer}"));
        answers.push(answer);
    }
    py.close_stdin().await?;
    py.wait().await?;
    Ok(answers)
}

/// The UCI handshake, then a search of the opening position.
async fn stockfish(start: Instant) -> duet::Result<String> {
    let program = match Path::new("/usr/games/stockfish").exists() {
        true => "/usr/games/stockfish",
        false => "stockfish",
    };
    let mut sf = Command::new(program)
        .timeout(Duration::from_secs(60))
        .spawn_async()?;
    sf.send_line("uci").await?;
    sf.expect(Pattern::line("^uciok$")?).await?;
    sf.send_line("isready").await?;
    sf.expect(Pattern::line("^readyok$")?).await?;
    log(start, "stockfish", "ready; searching to depth 18");
    sf.send_line("position startpos").await?;
    sf.send_line("go depth 18").await?;
    let depth = Pattern::line(r"^info depth (\d+) .* score (cp -?\d+|mate -?\d+)")?;
    let best = Pattern::line(r"^bestmove (\S+)")?;
    loop {
        let (i, m) = sf.expect_any(&[depth.clone(), best.clone()]).await?;
        if i == 1 {
            let mv = m.group(1).unwrap_or("?").to_string();
            log(start, "stockfish", &format!("bestmove {mv}"));
            sf.send_line("quit").await?;
            sf.wait().await?;
            return Ok(mv);
        }
        let d = m.group(1).unwrap_or("?");
        if d.parse::<u32>().is_ok_and(|d| d % 6 == 0) {
            log(
                start,
                "stockfish",
                &format!("depth {d}, score {}", m.group(2).unwrap_or("?")),
            );
        }
    }
}
