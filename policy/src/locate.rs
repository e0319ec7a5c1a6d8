//! Where each value of a YAML document sits, so that validation errors can
//! name `FILE:LINE:COL` even though serde hands us values without positions.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Line, counting from 1.
    pub line: usize,
    /// Column, counting from 1.
    pub column: usize,
}

/// Value positions by dotted path (`rules[0].session.inactivity`).
#[derive(Debug, Default)]
pub struct Locations {
    values: HashMap<String, Position>,
    /// Where a key is given a second time, by its path.
    duplicates: HashMap<String, Position>,
}

impl Locations {
    /// Indexes `text`, or returns the YAML syntax error and where it is.
    ///
    /// Only a document serde_yaml_ng refused, or one that fails validation,
    /// is indexed ([`crate::Policy::parse`]); then the syntax error, if
    /// there is one, is what is reported: serde_yaml_ng reports a type
    /// mismatch on the first node it cannot use, which for a truncated
    /// document hides the real problem.
    pub fn index(text: &str) -> Result<Locations, (Position, String)> {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if let Err(e) = parser.load(&mut builder, false) {
            let m = e.marker();
            let at = Position {
                line: m.line(),
                column: m.col() + 1,
            };
            return Err((at, format!("YAML syntax error: {}", e.info())));
        }
        Ok(Locations {
            values: builder.values,
            duplicates: builder.duplicates,
        })
    }

    /// Where the key at `path` (`session`, `session.inactivity`) is given
    /// again after its first time, if it is.
    pub fn duplicate(&self, path: &str) -> Option<Position> {
        self.duplicates.get(path).copied()
    }

    /// The position of the value at `path`, or of its nearest ancestor that
    /// exists in the file, or 1:1.
    pub fn find(&self, path: &str) -> Position {
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => {
                    return self
                        .values
                        .get("")
                        .copied()
                        .unwrap_or(Position { line: 1, column: 1 })
                }
            }
        }
    }
}

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

/// Nesting deeper than this is not indexed; the serde pass refuses such
/// documents anyway (its recursion limit is lower).
const MAX_DEPTH: usize = 256;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    segments: Vec<String>,
    values: HashMap<String, Position>,
    keys: HashSet<String>,
    duplicates: HashMap<String, Position>,
    opaque: usize,
    opaque_is_key: bool,
}

impl Builder {
    fn path(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            if !s.starts_with('[') && !out.is_empty() {
                out.push('.');
            }
            out.push_str(s);
        }
        out
    }

    /// Called for every node. Returns true if the node is a mapping key.
    fn node(&mut self, mark: Marker, scalar: Option<&str>) -> bool {
        let pos = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match self.stack.last_mut() {
            Some(Frame::Map { key }) if key.is_none() => {
                let name = scalar.unwrap_or("?").to_owned();
                *key = Some(name.clone());
                if scalar.is_some() && self.keys.len() < 100_000 {
                    let mut at = self.path();
                    if !at.is_empty() {
                        at.push('.');
                    }
                    at.push_str(&name);
                    if !self.keys.insert(at.clone()) {
                        self.duplicates.entry(at).or_insert(pos);
                    }
                }
                return true;
            }
            Some(Frame::Map { key }) => {
                let k = key.clone().unwrap_or_default();
                self.segments.push(k);
            }
            Some(Frame::Seq { index }) => {
                let i = *index;
                self.segments.push(format!("[{i}]"));
            }
            None => {}
        }
        if self.values.len() < 100_000 {
            self.values.entry(self.path()).or_insert(pos);
        }
        false
    }

    fn finish_value(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key }) => {
                *key = None;
                self.segments.pop();
            }
            Some(Frame::Seq { index }) => {
                *index += 1;
                self.segments.pop();
            }
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.opaque > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.opaque += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    self.opaque -= 1;
                    if self.opaque == 0 && !self.opaque_is_key {
                        self.finish_value();
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(ref v, ..) if !self.node(mark, Some(v)) => self.finish_value(),
            Event::Alias(_) if !self.node(mark, None) => self.finish_value(),
            Event::Scalar(..) | Event::Alias(_) => {}
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_key = self.node(mark, None);
                if is_key || self.stack.len() >= MAX_DEPTH {
                    // A complex key, or too deep to index: skip its inside.
                    self.opaque = 1;
                    self.opaque_is_key = is_key;
                    return;
                }
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.finish_value();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values() {
        let text = "version: 1\nsession:\n  inactivity: 3h\nrules:\n  - name: a\n    match: { users: [x, y] }\n";
        let l = Locations::index(text).unwrap();
        assert_eq!(
            l.find("session.inactivity"),
            Position {
                line: 3,
                column: 15
            }
        );
        assert_eq!(
            l.find("rules[0].name"),
            Position {
                line: 5,
                column: 11
            }
        );
        assert_eq!(
            l.find("rules[0].match.users[1]"),
            Position {
                line: 6,
                column: 25
            }
        );
        // Missing: falls back to the nearest ancestor.
        assert_eq!(l.find("rules[0].session.inactivity").line, 5);
    }
}
