//! The async driver against the blocking one (with the `tokio` feature,
//! which `make bench` turns on).
//!
//! - One round trip, `duet::tokio::Child::ask` on a current-thread runtime
//!   vs the blocking `Child::ask`, on the same pinned CPU: what the reactor
//!   and the timer cost per round trip.
//! - 1,000 children at once, each asked 100 lines: all of them on one
//!   current-thread runtime (one thread) vs 1,000 blocking children on
//!   1,000 threads, with every CPU and again with the bench and the
//!   children pinned to one CPU. The bench's thread count is shown as it
//!   was before and while the async children talk, with the parent's CPU
//!   time per ask and how many CPUs each variant kept busy.

use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::harness::{Row, Target, Unit, Variant, compare, rows, timed};

/// The async round trip: at most 1.3× the blocking one's time.
const ROUND_TRIP_TARGET: Target = Target::AtMost(1.3);
/// 1,000 children: the async time per ask at most the threads' (its
/// throughput at least theirs).
const MANY_TARGET: Target = Target::AtMost(1.0);

const ROUND_TRIPS: u64 = 2000;
const CHILDREN: usize = 1000;
const ASKS: usize = 100;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn echo(fixture: &Path) -> duet::Command {
    let mut cmd = duet::Command::new(fixture);
    cmd.arg("echo").timeout(Duration::from_secs(60));
    cmd
}

pub fn round_trip_rows(fixture: &Path) -> Vec<Row> {
    let case = "round trip of one short line, async vs blocking (fixture echo, one CPU)";
    eprintln!("measuring {case} …");
    let _pinned = crate::PinnedToOneCpu::new();
    let rt = runtime();
    let mut blocking = echo(fixture).spawn().expect("spawn the fixture");
    let mut asynchronous = rt
        .block_on(async { echo(fixture).spawn_async() })
        .expect("spawn the fixture");
    let sync_sample = || {
        timed(|| {
            for _ in 0..ROUND_TRIPS {
                assert_eq!(blocking.ask("ping").expect("ask"), "ping");
            }
        })
    };
    let async_sample = || {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..ROUND_TRIPS {
                assert_eq!(asynchronous.ask("ping").await.expect("ask"), "ping");
            }
            start.elapsed()
        })
    };
    let mut variants = [
        Variant::new("duet ask (blocking)", ROUND_TRIPS, sync_sample),
        Variant::new(
            "duet::tokio ask (current_thread)",
            ROUND_TRIPS,
            async_sample,
        )
        .target(ROUND_TRIP_TARGET),
    ];
    let samples = compare(1, 15, &mut variants);
    drop(variants);
    assert!(blocking.wait().expect("wait").success());
    rt.block_on(async { asynchronous.wait().await })
        .expect("wait");
    rows(case, Unit::Time, &samples, 0)
}

/// CPU time of this process so far, every thread's (the parent's side of
/// the conversations: the children's is not in it).
fn cpu() -> Duration {
    usage(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

/// CPU time of this process and of its reaped children so far.
fn cpu_with_children() -> Duration {
    usage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        + usage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

fn usage(who: nix::sys::resource::UsageWho) -> Duration {
    let Ok(u) = nix::sys::resource::getrusage(who) else {
        return Duration::ZERO;
    };
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Raises the soft descriptor limit to the hard one: 1,000 children hold
/// three descriptors each.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// The rows, and a line on the thread counts and CPU use. `one_cpu`: the
/// bench and every child pinned to the CPU it is on.
pub fn many_children_rows(fixture: &Path, one_cpu: bool) -> (Vec<Row>, String) {
    let case = match one_cpu {
        false => "1,000 children at once, 100 asks each (fixture echo)",
        true => "1,000 children at once, 100 asks each (fixture echo, one CPU)",
    };
    eprintln!("measuring {case} …");
    let _pinned = one_cpu.then(crate::PinnedToOneCpu::new);
    raise_fd_limit();
    let rt = runtime();
    let before = threads();
    let during = Cell::new(0);
    // The parent's CPU time while the asks ran, per variant.
    let sync_cpu = Cell::new(Duration::ZERO);
    let async_cpu = Cell::new(Duration::ZERO);
    // Whole samples (spawn, asks, reap): wall time and the CPU time of the
    // bench and its children, for how many CPUs each variant kept busy.
    let sync_busy = Cell::new((Duration::ZERO, Duration::ZERO));
    let async_busy = Cell::new((Duration::ZERO, Duration::ZERO));
    let busy = |slot: &Cell<(Duration, Duration)>, wall: Instant, cpu: Duration| {
        let (w, c) = slot.get();
        slot.set((w + wall.elapsed(), c + (cpu_with_children() - cpu)));
    };
    let sync_sample = || {
        let (whole, whole_cpu) = (Instant::now(), cpu_with_children());
        let children: Vec<duet::Child> = (0..CHILDREN)
            .map(|_| echo(fixture).spawn().expect("spawn the fixture"))
            .collect();
        let start_line = Arc::new(Barrier::new(CHILDREN + 1));
        let threads: Vec<_> = children
            .into_iter()
            .enumerate()
            .map(|(i, mut child)| {
                let start_line = start_line.clone();
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        start_line.wait();
                        for j in 0..ASKS {
                            let line = format!("{i}/{j}");
                            assert_eq!(child.ask(&line).expect("ask"), line);
                        }
                        child
                    })
                    .expect("a thread")
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        let cpu_start = cpu();
        let children: Vec<duet::Child> = threads
            .into_iter()
            .map(|t| t.join().expect("the thread finishes"))
            .collect();
        let took = start.elapsed();
        sync_cpu.set(sync_cpu.get() + (cpu() - cpu_start));
        for mut child in children {
            child.close_stdin().expect("close");
            child.wait().expect("wait");
        }
        busy(&sync_busy, whole, whole_cpu);
        took
    };
    let async_sample = || {
        rt.block_on(async {
            let (whole, whole_cpu) = (Instant::now(), cpu_with_children());
            let children: Vec<duet::tokio::Child> = (0..CHILDREN)
                .map(|_| echo(fixture).spawn_async().expect("spawn the fixture"))
                .collect();
            let start = Instant::now();
            let cpu_start = cpu();
            let mut set = tokio::task::JoinSet::new();
            for (i, mut child) in children.into_iter().enumerate() {
                set.spawn(async move {
                    for j in 0..ASKS {
                        let line = format!("{i}/{j}");
                        assert_eq!(child.ask(&line).await.expect("ask"), line);
                    }
                    child
                });
            }
            let mut done = Vec::with_capacity(CHILDREN);
            // The first to finish: all the others are still talking.
            done.push(set.join_next().await.expect("a task").expect("it finishes"));
            during.set(during.get().max(threads()));
            done.extend(set.join_all().await);
            let took = start.elapsed();
            async_cpu.set(async_cpu.get() + (cpu() - cpu_start));
            for mut child in done {
                child.close_stdin().await.expect("close");
                child.wait().await.expect("wait");
            }
            busy(&async_busy, whole, whole_cpu);
            took
        })
    };
    // A design that keeps the children warm from the caller's side: one
    // task writes every child's request before it reads any reply, so the
    // children run while the loop is still writing (tried for the 1.0×
    // target; see benches/README.md).
    let batched_sample = || {
        rt.block_on(async {
            let mut children: Vec<duet::tokio::Child> = (0..CHILDREN)
                .map(|_| echo(fixture).spawn_async().expect("spawn the fixture"))
                .collect();
            let start = Instant::now();
            for j in 0..ASKS {
                for (i, child) in children.iter_mut().enumerate() {
                    child.send_line(&format!("{i}/{j}")).await.expect("send");
                }
                for (i, child) in children.iter_mut().enumerate() {
                    let line = child.read_line().await.expect("read");
                    assert_eq!(line, format!("{i}/{j}"));
                }
            }
            let took = start.elapsed();
            for mut child in children {
                child.close_stdin().await.expect("close");
                child.wait().await.expect("wait");
            }
            took
        })
    };
    let ops = (CHILDREN * ASKS) as u64;
    let mut variants = [
        Variant::new("1,000 blocking children on 1,000 threads", ops, sync_sample),
        {
            let variant = Variant::new(
                "1,000 duet::tokio children, one current_thread runtime",
                ops,
                async_sample,
            );
            // The target is the unpinned run's; pinned shows where time goes.
            match one_cpu {
                false => variant.target(MANY_TARGET),
                true => variant,
            }
        },
        Variant::new(
            "1,000 duet::tokio children, one task: all writes, then all reads",
            ops,
            batched_sample,
        ),
    ];
    let rounds = 4;
    let samples = compare(0, rounds, &mut variants);
    drop(variants);
    let per_ask = |total: Duration| total.as_secs_f64() * 1e6 / (rounds as u64 * ops) as f64;
    let cpus = |slot: &Cell<(Duration, Duration)>| {
        let (wall, cpu) = slot.get();
        cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    };
    let note = format!(
        "{case}: threads of the bench process while 1,000 async children \
         talked: {} (before: {before}); the blocking variant runs 1,000 threads \
         of its own. The parent's CPU time per ask (all its threads, the \
         children's not counted): {:.1} µs blocking, {:.1} µs async. CPUs kept \
         busy (the bench and its children, whole samples): {:.2} blocking, \
         {:.2} async.",
        during.get(),
        per_ask(sync_cpu.get()),
        per_ask(async_cpu.get()),
        cpus(&sync_busy),
        cpus(&async_busy),
    );
    (rows(case, Unit::Time, &samples, 0), note)
}
