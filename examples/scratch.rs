use std::time::Instant;
fn main() {
    let fixture = std::env::args().nth(1).unwrap();
    let n: u32 = std::env::args().nth(2).map_or(200_000, |s| s.parse().unwrap());
    let mut c = duet::Command::new(&fixture).arg("echo").spawn().unwrap();
    let t = Instant::now();
    for _ in 0..n { assert_eq!(c.ask("ping").unwrap(), "ping"); }
    println!("{:?} per ask", t.elapsed() / n);
}
