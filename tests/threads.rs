//! Counts this process's threads while hundreds of async children talk:
//! its own binary, holding one test, so that no other test's thread comes
//! or goes while it counts. Needs the `tokio` feature.

mod accounting;

use std::sync::Arc;
use std::time::Duration;

use accounting::{children, threads};

const FIXTURE: &str = env!("CARGO_BIN_EXE_duet-fixture");

/// How many children talk at once.
const CHILDREN: usize = 250;

#[test]
fn hundreds_of_children_on_a_current_thread_runtime_add_no_thread() {
    let before = threads();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let during = rt.block_on(async {
        // Everyone meets here once every child is running and has answered.
        let all_running = Arc::new(tokio::sync::Barrier::new(CHILDREN + 1));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..CHILDREN {
            let all_running = all_running.clone();
            set.spawn(async move {
                let mut child = duet::Command::new(FIXTURE)
                    .arg(if i % 5 == 0 { "upper" } else { "echo" })
                    .pty(i % 7 == 0)
                    .timeout(Duration::from_secs(60))
                    .spawn_async()
                    .unwrap();
                let hello = format!("hello {i}");
                let want = |s: &str| {
                    if i % 5 == 0 {
                        s.to_uppercase()
                    } else {
                        s.to_string()
                    }
                };
                assert_eq!(child.ask(&hello).await.unwrap(), want(&hello));
                all_running.wait().await;
                for j in 0..20 {
                    let line = format!("{i}/{j}");
                    assert_eq!(child.ask(&line).await.unwrap(), want(&line));
                }
                child.close_stdin().await.unwrap();
                assert!(child.wait().await.unwrap().success());
            });
        }
        all_running.wait().await;
        let during = threads();
        set.join_all().await;
        during
    });
    drop(rt);
    assert_eq!(during, before, "threads while {CHILDREN} children talked");
    assert_eq!(children(), Vec::<String>::new(), "children left behind");
}
