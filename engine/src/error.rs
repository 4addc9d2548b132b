//! How errors are printed. Inside the engine an error says only its own
//! part (`cannot write /x/pidfile`) and hands its cause on through
//! `source()`; nothing repeats its source's text. The edges (CLI, server
//! functions, events) print the whole chain once, with [`report`].

use std::error::Error;

/// `e` and its causes on one line, outermost first:
/// `ok1: cannot write /x/pidfile: No space left on device`.
pub fn report(e: &(dyn Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn report_prints_each_cause_once_outermost_first() {
        let e = Outer("/x", std::io::Error::other("disk full"));
        assert_eq!(report(&e), "cannot write /x: disk full");
    }

    #[test]
    fn report_of_an_error_without_cause_is_its_message() {
        let e = std::io::Error::other("plain");
        assert_eq!(report(&e), "plain");
    }
}
