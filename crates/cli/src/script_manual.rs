//! The manual page `duet-script(5)`, made from the script language's
//! reference page, `docs/script.md` in the repository (`script.md` beside
//! this file is a link to it, so the published crate carries a copy): one
//! text, so the page and the reference cannot say different things.
//!
//! The Markdown it reads is the reference's own plain subset: `#`, `##` and
//! `###` headings, paragraphs, `- ` lists, tables, fenced blocks, and
//! `` `code` ``, `**bold**` and `[text](link)` inside a line.

use std::io;
use std::path::Path;

/// The reference page, in Markdown.
const SOURCE: &str = include_str!("script.md");

/// Writes `duet-script.5` into `dir`.
pub fn write_to(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("duet-script.5"), render(SOURCE))
}

/// The roff page for a Markdown page whose first line is `# NAME: WHAT`.
fn render(markdown: &str) -> String {
    let mut out = String::new();
    let mut lines = markdown.lines().peekable();
    let title = lines
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .unwrap_or("duet-script");
    let (name, what) = title
        .split_once(": ")
        .unwrap_or((title, "the duet script language"));
    out.push_str(&format!(
        ".TH {} 5 \"\" \"duet {}\" \"File Formats\"\n.nh\n.SH NAME\n{} \\- {}\n.SH DESCRIPTION\n",
        name.to_uppercase(),
        env!("CARGO_PKG_VERSION"),
        escape(name),
        escape(what)
    ));
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        } else if let Some(heading) = line.strip_prefix("### ") {
            out.push_str(&format!(".SS {}\n", inline(heading)));
        } else if let Some(heading) = line.strip_prefix("## ") {
            out.push_str(&format!(".SH {}\n", inline(&heading.to_uppercase())));
        } else if line.starts_with("```") {
            out.push_str(".PP\n.RS 4\n.nf\n");
            for code in lines.by_ref().take_while(|l| !l.starts_with("```")) {
                out.push_str(&text_line(&escape(code)));
            }
            out.push_str(".fi\n.RE\n");
        } else if line.starts_with('|') {
            // The header row and the rule under it name the columns, which
            // the tagged paragraphs below make plain.
            lines.next_if(|l| l.starts_with('|'));
            while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
                let cells = cells(row);
                if let Some((first, rest)) = cells.split_first() {
                    out.push_str(".TP\n");
                    out.push_str(&text_line(&inline(first)));
                    out.push_str(&text_line(&inline(&rest.join("; "))));
                }
            }
        } else if let Some(item) = line.strip_prefix("- ") {
            let mut text = item.to_string();
            while let Some(more) = lines.next_if(|l| l.starts_with("  ") && !l.trim().is_empty()) {
                text.push(' ');
                text.push_str(more.trim());
            }
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&text_line(&inline(&text)));
        } else {
            let mut text = line.to_string();
            while let Some(more) = lines.next_if(|l| {
                !l.trim().is_empty()
                    && !l.starts_with(['#', '|'])
                    && !l.starts_with("```")
                    && !l.starts_with("- ")
            }) {
                text.push(' ');
                text.push_str(more.trim());
            }
            out.push_str(".PP\n");
            out.push_str(&text_line(&inline(&text)));
        }
    }
    out
}

/// A line of roff text: one that would read as a request is protected.
fn text_line(text: &str) -> String {
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}\n")
    } else {
        format!("{text}\n")
    }
}

/// The cells of a table row; `\|` is a `|` inside a cell.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

/// Roff's escape character, written as itself.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
}

/// One line of Markdown as roff: code spans and bold in bold, a link as
/// its text.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            let (code, tail) = after.split_once('`').unwrap_or((after, ""));
            // Spaces in code are kept as written, never stretched or broken.
            out.push_str(&format!("\\fB{}\\fR", escape(code).replace(' ', "\\ ")));
            rest = tail;
        } else if let Some(after) = rest.strip_prefix("**") {
            let (bold, tail) = after.split_once("**").unwrap_or((after, ""));
            out.push_str(&format!("\\fB{}\\fR", inline(bold)));
            rest = tail;
        } else if let Some((label, tail)) = rest
            .strip_prefix('[')
            .and_then(|after| after.split_once("]("))
            .and_then(|(label, tail)| Some((label, tail.split_once(')')?.1)))
        {
            out.push_str(&inline(label));
            rest = tail;
        } else {
            let first = rest.chars().next().map_or(0, char::len_utf8);
            let end = rest[first..]
                .find(['`', '*', '['])
                .map_or(rest.len(), |at| at + first);
            out.push_str(&escape(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_roff() {
        let page = render(
            "# duet-script: the script language\n\nA `send TEXT` \\n.\n\n## Steps\n\n\
             | step | meaning |\n| --- | --- |\n| `pty on\\|off` | a [pty](x.md) |\n\n\
             ```sh\n.x\n```\n",
        );
        assert_eq!(
            page,
            format!(
                ".TH DUET-SCRIPT 5 \"\" \"duet {}\" \"File Formats\"\n.nh\n.SH NAME\n\
                 duet-script \\- the script language\n.SH DESCRIPTION\n\
                 .PP\nA \\fBsend\\ TEXT\\fR \\en.\n.SH STEPS\n\
                 .TP\n\\fBpty\\ on|off\\fR\na pty\n.PP\n.RS 4\n.nf\n\\&.x\n.fi\n.RE\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
