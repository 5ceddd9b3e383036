//! What a process holds, read from `/proc/self`: for the test binaries
//! that count (`leaks`, `threads`), each alone in its process so that no
//! other test opens or spawns while it counts.

/// Open descriptors of this process.
#[allow(dead_code)] // not every counting binary counts descriptors
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Threads of this process.
#[allow(dead_code)] // not every counting binary counts threads
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Children of every thread of this process (zombies included), sorted.
pub fn children() -> Vec<String> {
    let mut all = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        all.extend(text.split_whitespace().map(str::to_string));
    }
    all.sort();
    all
}
