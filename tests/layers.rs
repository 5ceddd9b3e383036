//! The layers inside each crate: no import circle between modules.
//!
//! Cargo keeps the crates in order (a crate cannot depend on a crate that
//! depends on it); inside a crate nothing does, so this test does. It reads
//! the sources of every crate of the workspace (`src/` and `crates/*/src/`),
//! collects the module paths each file refers to, builds the module
//! dependency graph and fails, printing each circle as `file → file → …`
//! with the line that makes every step, when the graph has one.
//!
//! # What counts as a reference
//!
//! - every `use` item, grouped forms included (`use crate::{a, b::c}`,
//!   `use super::x::{self, Y}`), `pub use` re-exports too;
//! - every path in code that starts with `crate::`, `self::`, `super::`, or
//!   with the name of a child module or of a `use` binding of the module it
//!   is written in (`transcript::Observed` in the module that declares
//!   `mod transcript`);
//! - a path is followed through `use` bindings and re-exports to the module
//!   that defines the item: `crate::Error` in a file is an edge to
//!   `error.rs` when the crate root says `pub use error::Error`, and a child
//!   that reaches a sibling's item through its parent (`super::Why`, where
//!   the parent says `pub use y::Why`) depends on that sibling. A path that
//!   ends in another crate (`std`, `nix`, `duet_core`) is no edge.
//!
//! Comments (doc comments included), string and character literals, items
//! under `#[cfg(test)]` (the `mod tests` blocks: a module's tests may reach
//! anywhere) and under `#[cfg(doc)]` (imports for doc links only) are
//! skipped. `mod x;` declarations are not references; they make the tree.
//!
//! Method calls are not seen (`cmd.spawn()` names no module), nor are
//! trait implementations: the graph is the one of names. So a method that
//! a low module calls must not be defined in a module above it (that is
//! why `remote` runs its own `ssh` through `Child::output_here`, not
//! `Command::output`); review keeps that, this test keeps the rest. Names
//! are looked up without namespaces (a module `run` and a function `run`
//! are one name), which can add an edge, never lose one.
//!
//! # Granularity
//!
//! Each file is a module; inline modules (`mod fallback { … }`) belong to
//! their file. The graph is checked at every level of the module tree:
//!
//! - at the top of a crate, a node per top-level module (`src/x.rs`, or the
//!   whole of `src/x/`), and one for the crate root's own items (`lib.rs` or
//!   `main.rs`: its re-exports are edges from it, never to it);
//! - inside each directory module `x/`, a node per child (`x/c.rs`, or the
//!   whole of `x/c/`) and one for `x/mod.rs`'s own items.
//!
//! So `driver/` as a whole is one layer among the top-level modules, and
//! inside it `driver/errors.rs` and `driver/pty.rs` are layers of their own.
//! A circle at any level fails the test.
//!
//! Run it alone with `cargo test --test tests layers::`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn no_import_circle_inside_any_crate() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crates = crate_roots(workspace);
    // The library, the core, the script language and the CLI at least: a
    // test that found no crate would pass vacuously.
    assert!(crates.len() >= 4, "crates found: {crates:?}");
    let mut report = String::new();
    for root in &crates {
        let krate = Crate::read(workspace, root);
        assert!(
            !krate.references.is_empty(),
            "{}: no reference found; is the parser broken?",
            root.display()
        );
        for circle in krate.circles() {
            report.push_str(&circle);
            report.push('\n');
        }
    }
    assert!(
        report.is_empty(),
        "import circles inside crates:\n\n{report}"
    );
}

#[test]
fn the_library_graph_has_the_expected_edges() {
    // The parser finds what is there: a few edges known to exist in the
    // library, through each kind of reference, so a parser that finds
    // nothing cannot make the test above pass.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let krate = Crate::read(workspace, &workspace.join("src/lib.rs"));
    let edges = krate.file_edges();
    for (from, to) in [
        // `use crate::{…}` through the root's re-export
        ("src/child.rs", "src/error.rs"),
        // a child of a directory module to a top-level module
        ("src/tokio/child.rs", "src/spawn/mod.rs"),
        // a child to a sibling through `super::`
        ("src/tokio/child.rs", "src/tokio/io.rs"),
        // everything that waits reaches the syscall layer
        ("src/child.rs", "src/sys.rs"),
    ] {
        assert!(
            edges.contains(&(from.to_string(), to.to_string())),
            "expected an edge {from} → {to}; edges: {edges:#?}"
        );
    }
}

#[test]
fn a_circle_in_a_fake_crate_is_reported() {
    let dir = fake_crate(&[
        ("src/lib.rs", "mod a;\nmod b;\npub use b::Bee;\n"),
        (
            "src/a.rs",
            "use crate::{Bee, b::sub::{self, Deep}};\npub fn ay() {}\n",
        ),
        (
            "src/b.rs",
            "pub struct Bee;\npub mod sub { pub struct Deep; }\n\
             pub fn f() {\n    crate::a::ay();\n}\n",
        ),
    ]);
    let circles = Crate::read(&dir, &dir.join("src/lib.rs")).circles();
    assert_eq!(circles.len(), 1, "{circles:#?}");
    let circle = &circles[0];
    assert!(
        circle.contains("src/a.rs → src/b.rs") && circle.contains("src/b.rs → src/a.rs"),
        "{circle}"
    );
    // Each step names the line that makes it.
    assert!(circle.contains("src/b.rs:4 crate::a::ay"), "{circle}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn comments_strings_and_tests_make_no_circle() {
    let dir = fake_crate(&[
        ("src/lib.rs", "//! See [`crate::b`].\nmod a;\nmod b;\n"),
        ("src/a.rs", "use crate::b::Bee;\npub fn ay() {}\n"),
        (
            "src/b.rs",
            "/// Called by [`crate::a::ay`]. /* crate::a::ay */\n\
             pub struct Bee;\n\
             const S: &str = \"crate::a::ay\";\n\
             const R: &str = r#\"super::a::ay \"quoted\"\"#;\n\
             const C: char = '\"';\n\
             fn life<'a>(x: &'a str) -> &'a str { x }\n\
             pub(in crate::a) struct Hidden;\n\
             #[cfg(test)]\nmod tests {\n    use super::super::a::ay;\n    \
             #[test] fn t() { crate::a::ay() }\n}\n",
        ),
    ]);
    let krate = Crate::read(&dir, &dir.join("src/lib.rs"));
    assert_eq!(krate.circles(), Vec::<String>::new());
    assert!(
        krate
            .file_edges()
            .contains(&("src/a.rs".into(), "src/b.rs".into()))
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_child_reaching_a_sibling_through_its_parent_counts() {
    // x uses `super::Why`, which the parent re-exports from y; y calls x:
    // a circle between the two children, although neither names the other
    // in a `use` line.
    let dir = fake_crate(&[
        ("src/lib.rs", "mod dir;\npub use duet_core::Pattern;\n"),
        (
            "src/dir/mod.rs",
            "mod x;\nmod y;\npub use y::Why;\npub fn run() { x::go() }\n",
        ),
        ("src/dir/x.rs", "use super::Why;\npub fn go() {}\n"),
        (
            "src/dir/y.rs",
            "use crate::Pattern;\npub struct Why;\nfn f() { super::x::go() }\n",
        ),
    ]);
    let circles = Crate::read(&dir, &dir.join("src/lib.rs")).circles();
    assert_eq!(circles.len(), 1, "{circles:#?}");
    assert!(circles[0].contains("inside src/dir/"), "{}", circles[0]);
    assert!(
        circles[0].contains("src/dir/x.rs → src/dir/y.rs")
            && circles[0].contains("src/dir/y.rs → src/dir/x.rs"),
        "{}",
        circles[0]
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_module_is_one_node_among_its_siblings() {
    // d/inner.rs uses top.rs, top.rs uses d/mod.rs: a circle between the
    // top-level modules `d/` and `top.rs` although no file is on it twice.
    let dir = fake_crate(&[
        ("src/lib.rs", "mod d;\nmod top;\n"),
        ("src/d/mod.rs", "mod inner;\npub fn dee() {}\n"),
        ("src/d/inner.rs", "fn f() { crate::top::tee() }\n"),
        ("src/top.rs", "pub fn tee() { crate::d::dee() }\n"),
    ]);
    let circles = Crate::read(&dir, &dir.join("src/lib.rs")).circles();
    assert_eq!(circles.len(), 1, "{circles:#?}");
    assert!(
        circles[0].contains("src/d/ → src/top.rs") && circles[0].contains("src/top.rs → src/d/"),
        "{}",
        circles[0]
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Writes `files` under a fresh temporary directory and returns it.
fn fake_crate(files: &[(&str, &str)]) -> PathBuf {
    let dir = crate::util::unique_temp("layers");
    for (path, text) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

/// The root file of every crate of the workspace: `src/lib.rs` and
/// `src/main.rs` of the root package and of each `crates/*`.
fn crate_roots(workspace: &Path) -> Vec<PathBuf> {
    let mut packages = vec![workspace.to_path_buf()];
    let mut members: Vec<PathBuf> = fs::read_dir(workspace.join("crates"))
        .map(|dir| dir.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    members.sort();
    packages.extend(members);
    packages
        .iter()
        .flat_map(|p| [p.join("src/lib.rs"), p.join("src/main.rs")])
        .filter(|p| p.is_file())
        .collect()
}

// ---------------------------------------------------------------------------
// Lexing: identifiers, `::` and punctuation, without comments and literals.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < s.len() {
        let c = s[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && s.get(i + 1) == Some(&'/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && s.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(s[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                if s[i] == '\\' {
                    i += 1;
                }
                line += usize::from(s.get(i) == Some(&'\n'));
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if s.get(i + 1) == Some(&'\\') {
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if s.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ident_char(c) {
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            if matches!(word.as_str(), "r" | "br" | "cr") && matches!(s.get(i), Some('"' | '#')) {
                let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
                if s.get(i + hashes) == Some(&'"') {
                    // A raw string: ends at `"` followed by as many `#`.
                    i += hashes + 1;
                    while i < s.len() {
                        if s[i] == '"'
                            && s[i + 1..].iter().take_while(|&&c| c == '#').count() >= hashes
                        {
                            i += 1 + hashes;
                            break;
                        }
                        line += usize::from(s[i] == '\n');
                        i += 1;
                    }
                    continue;
                }
                if word == "r" && hashes == 1 {
                    // A raw identifier: r#type.
                    i += 1;
                    continue;
                }
            }
            if !(matches!(word.as_str(), "b" | "c") && s.get(i) == Some(&'"')) {
                out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                });
            }
        } else if c == ':' && s.get(i + 1) == Some(&':') {
            out.push(Token {
                tok: Tok::Sep,
                line,
            });
            i += 2;
        } else if c == '$' {
            // `$crate` in a macro is `crate`.
            i += 1;
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(w), .. }) if w == word)
}

fn is_punct(t: Option<&Token>, c: char) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(p), .. }) if *p == c)
}

/// The index after the bracket that closes the one at `open`.
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// The tokens without the items under `#[cfg(test)]` or `#[cfg(doc)]` (any
/// `cfg` that names `test` or `doc` and has no `not`).
fn without_tests(tokens: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if is_punct(tokens.get(i), '#')
            && is_punct(tokens.get(i + 1), '[')
            && is_ident(tokens.get(i + 2), "cfg")
        {
            let end = matching(&tokens, i + 1);
            let words = &tokens[i + 2..end];
            let has = |w: &str| words.iter().any(|t| t.tok == Tok::Ident(w.into()));
            if (has("test") || has("doc")) && !has("not") {
                i = skip_item(&tokens, end);
                continue;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// The index after the item that starts at `i` (its attributes first).
fn skip_item(tokens: &[Token], mut i: usize) -> usize {
    while is_punct(tokens.get(i), '#') {
        i = matching(tokens, i + 1);
    }
    let mut keyword = i;
    if is_ident(tokens.get(keyword), "pub") {
        keyword += 1;
        if is_punct(tokens.get(keyword), '(') {
            keyword = matching(tokens, keyword);
        }
    }
    let is_use = is_ident(tokens.get(keyword), "use");
    while i < tokens.len() {
        match tokens[i].tok {
            Tok::Punct(';') => return i + 1,
            Tok::Punct('{') if !is_use => {
                let end = matching(tokens, i);
                // `const X: T = S { … };` goes on to its `;`.
                return if is_punct(tokens.get(end), ';') {
                    end + 1
                } else {
                    end
                };
            }
            Tok::Punct('(' | '[') => i = matching(tokens, i),
            _ => i += 1,
        }
    }
    i
}

// ---------------------------------------------------------------------------
// Parsing: the module tree, the `use` bindings, the references.

type ModPath = Vec<String>;

#[derive(Debug, Default)]
struct Module {
    /// Child modules, in their own file or inline.
    children: BTreeSet<String>,
    /// Names bound by `use` items: name → (module it was written in, path).
    bindings: BTreeMap<String, (ModPath, Vec<String>)>,
}

#[derive(Debug)]
struct Reference {
    /// Index into `Crate::files`.
    file: usize,
    line: usize,
    /// The module the path is written in, and the path.
    module: ModPath,
    path: Vec<String>,
}

#[derive(Debug)]
struct SourceFile {
    /// Relative to the workspace, with `/`.
    name: String,
    module: ModPath,
}

#[derive(Debug)]
struct Crate {
    files: Vec<SourceFile>,
    modules: BTreeMap<ModPath, Module>,
    references: Vec<Reference>,
}

impl Crate {
    /// Reads the crate whose root file is `root`, following `mod x;`.
    fn read(workspace: &Path, root: &Path) -> Crate {
        let mut krate = Crate {
            files: Vec::new(),
            modules: BTreeMap::new(),
            references: Vec::new(),
        };
        krate.modules.insert(Vec::new(), Module::default());
        let mut queue = VecDeque::from([(root.to_path_buf(), ModPath::new())]);
        while let Some((path, module)) = queue.pop_front() {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let name = path
                .strip_prefix(workspace)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            krate.files.push(SourceFile {
                name,
                module: module.clone(),
            });
            let file = krate.files.len() - 1;
            // The directory that holds this file's child modules.
            let stem = path.file_stem().unwrap().to_string_lossy();
            let dir = if matches!(&*stem, "lib" | "main" | "mod") {
                path.parent().unwrap().to_path_buf()
            } else {
                path.with_extension("")
            };
            for (child, inline) in krate.parse(file, &module, &text) {
                let mut child_dir = dir.clone();
                child_dir.extend(&inline);
                let name = child.last().unwrap();
                let flat = child_dir.join(format!("{name}.rs"));
                let nested = child_dir.join(name).join("mod.rs");
                let found = if flat.is_file() { flat } else { nested };
                queue.push_back((found, child));
            }
        }
        krate
    }

    /// Parses one file: records modules, bindings and references, and
    /// returns the child modules declared with `mod x;` (with the names of
    /// the inline modules they are declared in, for their directory).
    fn parse(&mut self, file: usize, top: &ModPath, text: &str) -> Vec<(ModPath, Vec<String>)> {
        let tokens = without_tests(lex(text));
        let mut declared = Vec::new();
        // Inline modules open here: (module, brace depth inside it).
        let mut stack: Vec<(ModPath, usize)> = vec![(top.clone(), 0)];
        let mut depth = 0;
        let mut i = 0;
        while i < tokens.len() {
            let module = stack.last().unwrap().0.clone();
            let t = &tokens[i];
            match &t.tok {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    if stack.len() > 1 && stack.last().unwrap().1 == depth {
                        stack.pop();
                    }
                    depth -= 1;
                }
                Tok::Ident(w) if w == "mod" => {
                    if let Some(Tok::Ident(name)) = tokens.get(i + 1).map(|t| &t.tok) {
                        let mut child = module.clone();
                        child.push(name.clone());
                        self.modules
                            .entry(module.clone())
                            .or_default()
                            .children
                            .insert(name.clone());
                        self.modules.entry(child.clone()).or_default();
                        if is_punct(tokens.get(i + 2), ';') {
                            let inline = module[top.len()..].to_vec();
                            declared.push((child, inline));
                        } else if is_punct(tokens.get(i + 2), '{') {
                            depth += 1;
                            stack.push((child, depth));
                        }
                        i += 3;
                        continue;
                    }
                }
                Tok::Ident(w) if w == "use" => {
                    let mut items = Vec::new();
                    i = parse_use_tree(&tokens, i + 1, Vec::new(), &mut items);
                    for (name, path, line) in items {
                        if let Some(name) = name.filter(|n| n != "_") {
                            let bindings =
                                &mut self.modules.entry(module.clone()).or_default().bindings;
                            bindings.insert(name, (module.clone(), path.clone()));
                        }
                        self.references.push(Reference {
                            file,
                            line,
                            module: module.clone(),
                            path,
                        });
                    }
                    continue;
                }
                Tok::Ident(first)
                    if tokens.get(i + 1).is_some_and(|t| t.tok == Tok::Sep)
                        && !(i > 0 && matches!(tokens[i - 1].tok, Tok::Sep | Tok::Punct('.')))
                        // `pub(in crate::x)` names an ancestor, not a dependency.
                        && !(i > 0 && is_ident(tokens.get(i - 1), "in")) =>
                {
                    // A path in code: `crate::a::b`, `super::x`, `child::f`.
                    let mut path = vec![first.clone()];
                    let mut j = i + 1;
                    while tokens.get(j).is_some_and(|t| t.tok == Tok::Sep) {
                        match tokens.get(j + 1).map(|t| &t.tok) {
                            Some(Tok::Ident(seg)) => path.push(seg.clone()),
                            _ => break,
                        }
                        j += 2;
                    }
                    self.references.push(Reference {
                        file,
                        line: t.line,
                        module: module.clone(),
                        path,
                    });
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        declared
    }

    /// The module a path written in `module` names (the module that defines
    /// the item it ends in), or `None` when it leaves the crate.
    fn resolve(&self, module: &[String], path: &[String], hops: usize) -> Option<ModPath> {
        let (first, rest) = path.split_first()?;
        let here = self.modules.get(module)?;
        match first.as_str() {
            "crate" => self.walk(&[], rest, hops),
            "self" => self.walk(module, rest, hops),
            "super" => self.walk(&module[..module.len().checked_sub(1)?], rest, hops),
            name if here.children.contains(name) => {
                let mut child = module.to_vec();
                child.push(name.to_string());
                self.walk(&child, rest, hops)
            }
            name => self.follow(here.bindings.get(name)?, rest, hops),
        }
    }

    /// Looks `path` up inside `module` (a path position, not a scope).
    fn walk(&self, module: &[String], path: &[String], hops: usize) -> Option<ModPath> {
        let Some((first, rest)) = path.split_first() else {
            return Some(module.to_vec());
        };
        let here = self.modules.get(module)?;
        if first == "super" {
            return self.walk(&module[..module.len().checked_sub(1)?], rest, hops);
        }
        if here.children.contains(first) {
            let mut child = module.to_vec();
            child.push(first.clone());
            return self.walk(&child, rest, hops);
        }
        match here.bindings.get(first) {
            Some(binding) => self.follow(binding, rest, hops),
            // An item defined here (or a glob's, or a variant's).
            None => Some(module.to_vec()),
        }
    }

    fn follow(
        &self,
        (module, path): &(ModPath, Vec<String>),
        rest: &[String],
        hops: usize,
    ) -> Option<ModPath> {
        if hops > 64 {
            return None;
        }
        let mut full = path.clone();
        full.extend_from_slice(rest);
        self.resolve(module, &full, hops + 1)
    }

    /// The file that holds `module` (the deepest file module above it).
    fn file_of(&self, module: &[String]) -> usize {
        (0..=module.len())
            .rev()
            .find_map(|n| self.files.iter().position(|f| f.module == module[..n]))
            .expect("the crate root holds every module")
    }

    /// Every resolved reference: (from file, to file, line, path text).
    fn edges(&self) -> Vec<(usize, usize, usize, String)> {
        let mut edges = Vec::new();
        for r in &self.references {
            let Some(target) = self.resolve(&r.module, &r.path, 0) else {
                continue;
            };
            let to = self.file_of(&target);
            if to != r.file {
                edges.push((r.file, to, r.line, r.path.join("::")));
            }
        }
        edges
    }

    /// The file-to-file edges, by file name.
    fn file_edges(&self) -> BTreeSet<(String, String)> {
        self.edges()
            .into_iter()
            .map(|(a, b, ..)| (self.files[a].name.clone(), self.files[b].name.clone()))
            .collect()
    }

    /// One report per circle found, at every level of the module tree.
    fn circles(&self) -> Vec<String> {
        let edges = self.edges();
        let mut reports = Vec::new();
        for parent in &self.files {
            let depth = parent.module.len();
            let inside = |f: usize| self.files[f].module.starts_with(&parent.module);
            if (0..self.files.len()).filter(|&f| inside(f)).count() < 2 {
                continue;
            }
            // The node of a file in this level's graph: the parent's own
            // file, or the child module (file or directory) that holds it.
            let node = |f: usize| -> String {
                let m = &self.files[f].module;
                if m.len() == depth {
                    return parent.name.clone();
                }
                let child = self.file_of(&m[..=depth]);
                let has_files = self
                    .files
                    .iter()
                    .any(|g| g.module.len() > depth + 1 && g.module.starts_with(&m[..=depth]));
                let name = &self.files[child].name;
                if has_files || name.ends_with("/mod.rs") {
                    dir_of(name)
                } else {
                    name.clone()
                }
            };
            let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for &(from, to, line, ref text) in &edges {
                if !inside(from) || !inside(to) {
                    continue;
                }
                let (a, b) = (node(from), node(to));
                if a != b {
                    let witness = format!("{}:{line} {text}", self.files[from].name);
                    graph.entry(a).or_default().entry(b).or_insert(witness);
                }
            }
            for component in strongly_connected(&graph) {
                let cycle = cycle_in(&graph, &component);
                let mut report = format!(
                    "circle inside {} ({} modules: {}):\n",
                    if depth == 0 {
                        format!("the crate of {}", parent.name)
                    } else {
                        dir_of(&parent.name)
                    },
                    component.len(),
                    component.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                for pair in cycle.windows(2) {
                    let witness = &graph[&pair[0]][&pair[1]];
                    report.push_str(&format!("  {} → {}   ({witness})\n", pair[0], pair[1]));
                }
                reports.push(report);
            }
        }
        reports
    }
}

/// The directory of a module's children, `src/x/`, for `src/x/mod.rs`
/// or `src/x.rs`.
fn dir_of(file: &str) -> String {
    match file.strip_suffix("mod.rs") {
        Some(dir) => dir.to_string(),
        None => format!("{}/", file.trim_end_matches(".rs")),
    }
}

/// Parses a use tree from `i`; pushes (bound name, path, line) per leaf.
fn parse_use_tree(
    tokens: &[Token],
    mut i: usize,
    mut path: Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>, usize)>,
) -> usize {
    loop {
        let Some(t) = tokens.get(i) else { return i };
        match &t.tok {
            Tok::Sep => i += 1,
            Tok::Ident(seg) if seg != "as" => {
                path.push(seg.clone());
                i += 1;
                if tokens.get(i).is_some_and(|t| t.tok != Tok::Sep) {
                    break;
                }
            }
            Tok::Punct('{') => {
                i += 1;
                while i < tokens.len() && !is_punct(tokens.get(i), '}') {
                    let next = parse_use_tree(tokens, i, path.clone(), out);
                    i = if is_punct(tokens.get(next), ',') {
                        next + 1
                    } else {
                        next.max(i + 1)
                    };
                }
                return finish_use(tokens, i + 1);
            }
            Tok::Punct('*') => {
                out.push((None, path, t.line));
                return finish_use(tokens, i + 1);
            }
            _ => break,
        }
    }
    let line = tokens[i.saturating_sub(1)].line;
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    let mut name = path.last().cloned();
    if is_ident(tokens.get(i), "as") {
        if let Some(Tok::Ident(alias)) = tokens.get(i + 1).map(|t| &t.tok) {
            name = Some(alias.clone());
        }
        i += 2;
    }
    if !path.is_empty() {
        out.push((name, path, line));
    }
    finish_use(tokens, i)
}

/// Steps over the `;` that ends a `use` item.
fn finish_use(tokens: &[Token], i: usize) -> usize {
    if is_punct(tokens.get(i), ';') {
        i + 1
    } else {
        i
    }
}

type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The strongly connected components of more than one node (Tarjan).
fn strongly_connected(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

/// A shortest cycle through the first node of `component`, as a list of
/// nodes that starts and ends with it.
fn cycle_in(graph: &Graph, component: &BTreeSet<String>) -> Vec<String> {
    let start = component.first().unwrap();
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start.as_str()]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v].keys().filter(|w| component.contains(*w)) {
            if w == start {
                let mut cycle = vec![start.clone()];
                let mut at = v;
                while at != start {
                    cycle.push(at.to_string());
                    at = previous[at];
                }
                cycle.push(start.clone());
                cycle.reverse();
                return cycle;
            }
            if !previous.contains_key(w.as_str()) {
                previous.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("a strongly connected component has a cycle through each node")
}
