//! `send_slow`: one character at a time, paced, through both drivers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duet::{Command, Observed};

use crate::drive::{Conv, Start, both};

/// Every write to the child's stdin, one entry per write.
fn writes<C: Conv>(child: &mut C) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    child.set_observer(move |chunk| {
        if let Observed::Sent(b) = chunk {
            keep.lock().unwrap().push(b.to_vec());
        }
    });
    seen
}

async fn send_slow_writes_one_utf8_character_at_a_time<C: Conv>() {
    let mut cat = Command::new("cat").start::<C>().unwrap();
    let sent = writes(&mut cat);
    let text = "añ€😀\n";
    let per_char = Duration::from_millis(10);
    let start = Instant::now();
    cat.send_slow(text, per_char).await.unwrap();
    // The pauses are a floor, whatever the load: 4 between 5 characters.
    assert!(start.elapsed() >= per_char * 4, "{:?}", start.elapsed());
    assert_eq!(cat.read_line().await.unwrap(), "añ€😀");
    let sent = sent.lock().unwrap();
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let got: Vec<String> = sent
        .iter()
        .map(|w| String::from_utf8(w.clone()).expect("a whole character per write"))
        .collect();
    assert_eq!(got, chars);
}

async fn send_slow_on_a_pty_arrives_as_typed<C: Conv>() {
    let mut sh = Command::new("sh")
        .args(["-c", "read line; echo \"got $line\""])
        .pty(true)
        .start::<C>()
        .unwrap();
    sh.send_slow("slow\n", Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(sh.read_line().await.unwrap(), "got slow");
}

async fn send_slow_to_a_child_that_is_gone_is_an_error<C: Conv>() {
    let mut t = Command::new("true").start::<C>().unwrap();
    t.wait().await.unwrap();
    let err = t.send_slow("abc", Duration::ZERO).await.unwrap_err();
    let io = std::io::Error::from(err);
    assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
}

async fn send_slow_of_nothing_sends_nothing<C: Conv>() {
    let mut cat = Command::new("cat").start::<C>().unwrap();
    let sent = writes(&mut cat);
    cat.send_slow("", Duration::from_secs(3600)).await.unwrap();
    assert!(sent.lock().unwrap().is_empty());
}

both!(
    send_slow_writes_one_utf8_character_at_a_time,
    send_slow_on_a_pty_arrives_as_typed,
    send_slow_to_a_child_that_is_gone_is_an_error,
    send_slow_of_nothing_sends_nothing,
);
