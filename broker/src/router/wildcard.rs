//! RabbitMQ-style topic patterns: segments separated by `.`, `*` matches
//! exactly one segment, `#` matches zero or more.

/// A compiled subscription pattern (the part after the `/topic/` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    prefix: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Many,
}

impl Pattern {
    /// Compiles `destination` if it contains a wildcard segment under one of
    /// the pattern-capable prefixes; `None` means an exact destination.
    pub(crate) fn parse(destination: &str) -> Option<Pattern> {
        let prefix = "/topic/";
        let key = destination.strip_prefix(prefix)?;
        let segments: Vec<Segment> = key
            .split('.')
            .map(|s| match s {
                "*" => Segment::One,
                "#" => Segment::Many,
                other => Segment::Literal(other.to_owned()),
            })
            .collect();
        if segments.iter().all(|s| matches!(s, Segment::Literal(_))) {
            return None;
        }
        Some(Pattern {
            prefix: prefix.to_owned(),
            segments,
        })
    }

    /// Whether `destination` matches.
    pub(crate) fn matches(&self, destination: &str) -> bool {
        let Some(key) = destination.strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        let words: Vec<&str> = key.split('.').collect();
        match_from(&self.segments, &words)
    }
}

fn match_from(segments: &[Segment], words: &[&str]) -> bool {
    match segments.split_first() {
        None => words.is_empty(),
        Some((Segment::Many, rest)) => {
            (0..=words.len()).any(|skip| match_from(rest, &words[skip..]))
        }
        Some((Segment::One, rest)) => !words.is_empty() && match_from(rest, &words[1..]),
        Some((Segment::Literal(lit), rest)) => {
            words.first().is_some_and(|w| w == lit) && match_from(rest, &words[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, d: &str) -> bool {
        Pattern::parse(p).expect("pattern").matches(d)
    }

    #[test]
    fn exact_destinations_are_not_patterns() {
        assert!(Pattern::parse("/topic/a.b").is_none());
        assert!(Pattern::parse("/queue/a.*").is_none());
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        assert!(m("/topic/a.*.c", "/topic/a.b.c"));
        assert!(!m("/topic/a.*.c", "/topic/a.c"));
        assert!(!m("/topic/a.*", "/topic/a.b.c"));
        assert!(m("/topic/*", "/topic/x"));
    }

    #[test]
    fn hash_matches_zero_or_more_segments() {
        assert!(m("/topic/a.#", "/topic/a"));
        assert!(m("/topic/a.#", "/topic/a.b.c"));
        assert!(m("/topic/#", "/topic/anything.at.all"));
        assert!(m("/topic/a.#.z", "/topic/a.z"));
        assert!(m("/topic/a.#.z", "/topic/a.b.c.z"));
        assert!(!m("/topic/a.#.z", "/topic/a.b.c"));
        assert!(!m("/topic/a.#", "/topic/b.a"));
    }
}
