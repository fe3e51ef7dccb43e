//! What the CLI prints for people: standard output that a closed pipe ends quietly, durations in
//! words and as Slurm writes them, and aligned tables.

use std::io::Write;

/// Writes to standard output; the `outln!` macro of `main.rs` calls it. A reader that went away
/// (`grappe job list | head -1`) ends the program quietly and successfully, as a closed pipe ends
/// `ls`; `println!` would panic instead (Rust ignores SIGPIPE, and resetting it needs `unsafe`,
/// which the workspace forbids). Any other failure to write ends it with a message.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(args) {
        stdout_failed(&error);
    }
}

/// Ends the program after a failed write to standard output: quietly with success on a closed
/// pipe, else with the error.
pub fn stdout_failed(error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output: {error}");
    std::process::exit(1);
}

/// A duration for people, in English: `45 s`, `12 min`, `3 h 12 min`, `2 d 4 h`
/// (`grappe_server::kit::i18n::Locale::duration`, as the pages write it).
pub fn human_duration(seconds: i64) -> String {
    grappe_server::kit::i18n::Locale::En.duration(seconds)
}

/// A duration as Slurm's `squeue` writes its TIME and TIME_LIMIT columns: `M:SS`, `H:MM:SS`,
/// `D-HH:MM:SS`.
pub fn clock_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (days, hours, minutes, rest) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes}:{rest:02}"),
        (0, _) => format!("{hours}:{minutes:02}:{rest:02}"),
        _ => format!("{days}-{hours:02}:{minutes:02}:{rest:02}"),
    }
}

/// `text` in at most `width` characters: cut, with an ellipsis as its last character.
pub fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// How a column is aligned.
#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Right,
}

/// Rows of cells as lines, each column as wide as its widest cell (counted in characters), two
/// spaces between columns, and no spaces at the end of a line.
pub fn table(aligns: &[Align], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths = vec![0; aligns.len()];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(aligns.iter().zip(&widths))
                .map(|(cell, (align, width))| match align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_squeue() {
        let check = |seconds, expected: &str| assert_eq!(clock_duration(seconds), expected, "{seconds} s");
        check(0, "0:00");
        check(59, "0:59");
        check(600, "10:00");
        check(3600, "1:00:00");
        check(36_000 + 61, "10:01:01");
        check(86_400 + 3600, "1-01:00:00");
        check(-5, "0:00");
    }

    #[test]
    fn shortened_names_end_with_an_ellipsis() {
        assert_eq!(shorten("train", 8), "train");
        assert_eq!(shorten("exactly8", 8), "exactly8");
        assert_eq!(shorten("much-too-long", 8), "much-to…");
        assert_eq!(shorten("éléphants", 4), "élé…");
    }

    #[test]
    fn tables_line_up_without_trailing_spaces() {
        let rows = vec![
            vec!["ID".to_owned(), "NAME".to_owned(), "REASON".to_owned()],
            vec!["7".to_owned(), "é".to_owned(), String::new()],
            vec!["12".to_owned(), "train".to_owned(), "Priority".to_owned()],
        ];
        let lines = table(&[Align::Right, Align::Left, Align::Left], &rows);
        assert_eq!(lines, ["ID  NAME   REASON", " 7  é", "12  train  Priority"]);
    }
}
