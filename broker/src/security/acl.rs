//! Destination authorization (`[acl]`): which principal may publish to,
//! subscribe to, or create which destination.
//!
//! Rules are checked in order and the first one that matches the principal,
//! the action and the destination decides; when none matches, the
//! configured default does.
//!
//! Destination patterns are split into segments at both `/` and `.`
//! (`/queue/orders.eu` is `""`, `queue`, `orders`, `eu`). In a pattern, a
//! segment `*` matches exactly one segment and a segment `#` matches zero
//! or more; `{user}` inside a segment stands for the principal's user name.
//! A rule using `{user}` never matches an anonymous principal, nor a user
//! whose name contains a separator (`/`, `.`), a wildcard character
//! (`*`, `#`) or a brace: such a name could otherwise reach past its own segment
//! (user `a.b` would own `inbox.a.b`, which is inside user `a`'s
//! `inbox.a.#`).
//!
//! Patterns are compiled once; [`Acl::allows`] does not allocate.

use super::SecurityError;
use crate::auth::Principal;
use crate::config::{AclAction, AclConfig, AclEffect, RefusalMode};

/// The separators between destination segments.
const SEPARATORS: [char; 2] = ['/', '.'];

/// The placeholder for the principal's user name.
const USER_PLACEHOLDER: &str = "{user}";

/// One pattern segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches this exact text.
    Literal(Box<str>),
    /// `*`: any one segment.
    One,
    /// `#`: zero or more segments.
    Any,
    /// Text around one `{user}`: matches `prefix + user + suffix`.
    User {
        /// The text before `{user}`.
        prefix: Box<str>,
        /// The text after `{user}`.
        suffix: Box<str>,
    },
}

impl Segment {
    /// Whether this (non-`#`) segment matches the destination segment `d`.
    /// `user` is the principal's name, already known to be safe.
    fn matches(&self, d: &str, user: Option<&str>) -> bool {
        match self {
            Segment::Literal(text) => **text == *d,
            Segment::One => true,
            Segment::Any => false,
            Segment::User { prefix, suffix } => user.is_some_and(|user| {
                d.len() == prefix.len() + user.len() + suffix.len()
                    && d.starts_with(&**prefix)
                    && d.ends_with(&**suffix)
                    && d.get(prefix.len()..d.len() - suffix.len()) == Some(user)
            }),
        }
    }
}

/// A compiled destination pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<Segment>,
    uses_user: bool,
}

impl Pattern {
    /// Compiles `text`; the error says what is wrong.
    fn compile(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("the destination pattern is empty".into());
        }
        let mut segments = Vec::new();
        let mut uses_user = false;
        for seg in text.split(SEPARATORS) {
            let compiled = match seg {
                "*" => Segment::One,
                "#" => {
                    // `#` `#` is the same as one `#`; keep matching linear.
                    if segments.last() == Some(&Segment::Any) {
                        continue;
                    }
                    Segment::Any
                }
                _ if seg.contains(['*', '#']) => {
                    return Err(format!(
                        "segment {seg:?}: '*' and '#' must be a whole segment \
                         (segments are separated by '/' and '.')"
                    ))
                }
                _ => match seg.split_once(USER_PLACEHOLDER) {
                    Some((prefix, suffix)) => {
                        if suffix.contains(USER_PLACEHOLDER) {
                            return Err(format!(
                                "segment {seg:?}: at most one {{user}} per segment"
                            ));
                        }
                        if prefix.contains(['{', '}']) || suffix.contains(['{', '}']) {
                            return Err(format!(
                                "segment {seg:?}: '{{' and '}}' are only allowed in {{user}}"
                            ));
                        }
                        uses_user = true;
                        Segment::User {
                            prefix: prefix.into(),
                            suffix: suffix.into(),
                        }
                    }
                    None if seg.contains(['{', '}']) => {
                        return Err(format!(
                            "segment {seg:?}: '{{' and '}}' are only allowed in {{user}}"
                        ))
                    }
                    None => Segment::Literal(seg.into()),
                },
            };
            segments.push(compiled);
        }
        Ok(Pattern {
            segments,
            uses_user,
        })
    }

    /// Whether the pattern matches `destination` for `user` (already
    /// checked to be a safe name when the pattern uses `{user}`).
    ///
    /// Glob matching over segments with one backtracking point (the last
    /// `#`): linear in practice, never exponential, and allocation-free
    /// (the split iterator is cloned, not collected).
    fn matches(&self, destination: &str, user: Option<&str>) -> bool {
        let pat = &self.segments;
        let mut p = 0;
        let mut dest = destination.split(SEPARATORS);
        // (pattern index after the last `#`, destination position to retry).
        let mut backtrack: Option<(usize, std::str::Split<'_, [char; 2]>)> = None;
        loop {
            if pat.get(p) == Some(&Segment::Any) {
                p += 1;
                if p == pat.len() {
                    return true;
                }
                backtrack = Some((p, dest.clone()));
                continue;
            }
            let mut next = dest.clone();
            match next.next() {
                Some(d) => {
                    if pat.get(p).is_some_and(|s| s.matches(d, user)) {
                        p += 1;
                        dest = next;
                        continue;
                    }
                }
                None => {
                    if p == pat.len() {
                        return true;
                    }
                }
            }
            // Mismatch: let the last `#` swallow one more segment.
            match &mut backtrack {
                Some((after_any, retry)) => {
                    if retry.next().is_none() {
                        return false;
                    }
                    p = *after_any;
                    dest = retry.clone();
                }
                None => return false,
            }
        }
    }
}

/// Who a rule is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    /// `*`: everyone, authenticated or anonymous.
    Everyone,
    /// `anonymous`: connections without a user.
    Anonymous,
    /// `user:NAME`.
    User(Box<str>),
    /// `role:NAME`.
    Role(Box<str>),
}

impl Who {
    fn parse(text: &str) -> Result<Who, String> {
        match text {
            "*" => return Ok(Who::Everyone),
            "anonymous" => return Ok(Who::Anonymous),
            _ => {}
        }
        let bad = || {
            format!(
                "who entry {text:?} is not \"user:NAME\", \"role:NAME\", \"anonymous\" or \"*\""
            )
        };
        let (kind, name) = text.split_once(':').ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        match kind {
            "user" => Ok(Who::User(name.into())),
            "role" => Ok(Who::Role(name.into())),
            _ => Err(bad()),
        }
    }

    fn matches(&self, principal: &Principal) -> bool {
        match self {
            Who::Everyone => true,
            Who::Anonymous => principal.user.is_none(),
            Who::User(name) => principal.user.as_deref() == Some(&**name),
            Who::Role(role) => principal.has_role(role),
        }
    }
}

/// The bit for an action in a rule's action set.
fn action_bit(action: AclAction) -> u8 {
    match action {
        AclAction::Publish => 1,
        AclAction::Subscribe => 2,
        AclAction::Create => 4,
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    who: Vec<Who>,
    actions: u8,
    pattern: Pattern,
    allow: bool,
}

/// Compiled `[acl]` rules.
#[derive(Debug, Clone)]
pub struct Acl {
    rules: Vec<Rule>,
    default_allow: bool,
    refusal: RefusalMode,
}

impl Default for Acl {
    /// No rules, everything allowed.
    fn default() -> Self {
        Acl {
            rules: Vec::new(),
            default_allow: true,
            refusal: RefusalMode::default(),
        }
    }
}

impl Acl {
    /// Compiles and checks the rules of `config`. The error names the rule
    /// (1-based, in file order) and what is wrong with it.
    pub fn from_config(config: &AclConfig) -> Result<Acl, SecurityError> {
        let mut rules = Vec::with_capacity(config.rules.len());
        for (index, rule) in config.rules.iter().enumerate() {
            let section = format!("[acl] rule {} ({:?})", index + 1, rule.destination);
            let fail = |message: String| SecurityError::config(section.clone(), message);
            if rule.who.is_empty() {
                return Err(fail("\"who\" is empty".into()));
            }
            if rule.actions.is_empty() {
                return Err(fail("\"actions\" is empty".into()));
            }
            let who = rule
                .who
                .iter()
                .map(|w| Who::parse(w))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let pattern = Pattern::compile(&rule.destination).map_err(fail)?;
            rules.push(Rule {
                who,
                actions: rule.actions.iter().fold(0, |m, a| m | action_bit(*a)),
                pattern,
                allow: rule.effect == AclEffect::Allow,
            });
        }
        Ok(Acl {
            rules,
            default_allow: config.default == AclEffect::Allow,
            refusal: config.refusal,
        })
    }

    /// Whether there is nothing to check: no rules and a default of allow.
    /// Callers may then skip [`Acl::allows`] entirely.
    pub fn is_open(&self) -> bool {
        self.rules.is_empty() && self.default_allow
    }

    /// How denials are answered (`[acl] refusal`).
    pub fn refusal(&self) -> RefusalMode {
        self.refusal
    }

    /// Whether `principal` may do `action` on `destination`: the first rule
    /// matching all three decides, else the default. Does not allocate.
    pub fn allows(&self, principal: &Principal, action: AclAction, destination: &str) -> bool {
        let bit = action_bit(action);
        let user = principal.user.as_deref();
        // A name usable in `{user}`: non-empty, no separator, no wildcard.
        let safe_user =
            user.filter(|u| !u.is_empty() && !u.contains(['/', '.', '*', '#', '{', '}']));
        for rule in &self.rules {
            if rule.actions & bit == 0 {
                continue;
            }
            if rule.pattern.uses_user && safe_user.is_none() {
                continue;
            }
            if !rule.who.iter().any(|w| w.matches(principal)) {
                continue;
            }
            if rule.pattern.matches(destination, safe_user) {
                return rule.allow;
            }
        }
        self.default_allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AclRule;

    fn rule(who: &[&str], destination: &str, actions: &[AclAction], effect: AclEffect) -> AclRule {
        AclRule {
            who: who.iter().map(|s| s.to_string()).collect(),
            destination: destination.into(),
            actions: actions.to_vec(),
            effect,
        }
    }

    fn acl(default: AclEffect, rules: Vec<AclRule>) -> Acl {
        Acl::from_config(&AclConfig {
            default,
            refusal: RefusalMode::Error,
            rules,
        })
        .unwrap()
    }

    fn matches(pattern: &str, destination: &str) -> bool {
        Pattern::compile(pattern)
            .unwrap()
            .matches(destination, None)
    }

    fn user_with_roles(name: &str, roles: &[&str]) -> Principal {
        Principal {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Principal::user(name)
        }
    }

    use AclAction::{Create, Publish, Subscribe};
    use AclEffect::{Allow, Deny};

    #[test]
    fn literal_and_star() {
        assert!(matches("/queue/a", "/queue/a"));
        assert!(!matches("/queue/a", "/queue/b"));
        assert!(!matches("/queue/a", "/queue/a/b"));
        assert!(matches("/queue/*", "/queue/x"));
        assert!(!matches("/queue/*", "/queue/x.y"));
        assert!(!matches("/queue/*", "/queue"));
        assert!(matches("/topic/*.price", "/topic/eu.price"));
        // `/` and `.` are equivalent separators.
        assert!(matches("/topic/a.b", "/topic/a/b"));
    }

    #[test]
    fn hash_at_start_middle_end() {
        assert!(matches("#", ""));
        assert!(matches("#", "/anything/at.all"));
        assert!(matches("#.price", "/topic/eu.price"));
        assert!(matches("#.price", "price"));
        assert!(!matches("#.price", "/topic/eu.prices"));
        assert!(matches("/topic/#/price", "/topic/price"));
        assert!(matches("/topic/#/price", "/topic/a/b.c/price"));
        assert!(!matches("/topic/#/price", "/topic/a/b/cost"));
        assert!(matches("/queue/#", "/queue"));
        assert!(matches("/queue/#", "/queue/a"));
        assert!(matches("/queue/#", "/queue/a.b/c"));
        assert!(!matches("/queue/#", "/topic/a"));
        assert!(matches("/#", "/queue/a"));
        assert!(matches("/a/#/b/#/c", "/a/x/b/y/b/z/c"));
        assert!(!matches("/a/#/b/#/c", "/a/x/c/y/b"));
        assert!(matches("/a/#/*/c", "/a/x/c"));
        assert!(!matches("/a/#/*/c", "/a/c"));
        assert!(matches("/a/#/#/c", "/a/c"));
    }

    #[test]
    fn many_hashes_do_not_blow_up() {
        let dest = format!("/{}", vec!["x"; 200].join("/"));
        let pattern = format!("/{}/y", vec!["#"; 20].join("/x/"));
        let start = std::time::Instant::now();
        assert!(!matches(&pattern, &dest));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn first_match_wins_in_order() {
        let a = acl(
            Allow,
            vec![
                rule(&["*"], "/queue/secret.#", &[Publish, Subscribe], Deny),
                rule(&["*"], "/queue/#", &[Publish, Subscribe], Allow),
            ],
        );
        let p = Principal::user("u");
        assert!(!a.allows(&p, Subscribe, "/queue/secret.x"));
        assert!(a.allows(&p, Subscribe, "/queue/public"));
        let b = acl(
            Allow,
            vec![
                rule(&["*"], "/queue/#", &[Publish, Subscribe], Allow),
                rule(&["*"], "/queue/secret.#", &[Publish, Subscribe], Deny),
            ],
        );
        assert!(b.allows(&p, Subscribe, "/queue/secret.x"));
    }

    #[test]
    fn actions_select_rules() {
        let a = acl(Allow, vec![rule(&["*"], "/queue/#", &[Create], Deny)]);
        let p = Principal::user("u");
        assert!(!a.allows(&p, Create, "/queue/new"));
        assert!(a.allows(&p, Publish, "/queue/new"));
        assert!(a.allows(&p, Subscribe, "/queue/new"));
    }

    #[test]
    fn users_roles_and_anonymous() {
        let a = acl(
            Deny,
            vec![
                rule(&["role:admin"], "/#", &[Publish, Subscribe, Create], Allow),
                rule(&["user:bob"], "/topic/bob.#", &[Publish], Allow),
                rule(&["anonymous"], "/topic/public", &[Subscribe], Allow),
                rule(
                    &["role:ops", "user:carol"],
                    "/queue/ops",
                    &[Subscribe],
                    Allow,
                ),
            ],
        );
        let admin = user_with_roles("alice", &["admin"]);
        let bob = Principal::user("bob");
        let carol = Principal::user("carol");
        let ops = user_with_roles("dan", &["ops"]);
        let anon = Principal::default();
        assert!(a.allows(&admin, Create, "/queue/anything"));
        assert!(a.allows(&bob, Publish, "/topic/bob.news"));
        assert!(!a.allows(&bob, Subscribe, "/topic/bob.news"));
        assert!(!a.allows(&bob, Publish, "/topic/alice.news"));
        assert!(a.allows(&anon, Subscribe, "/topic/public"));
        assert!(!a.allows(&bob, Subscribe, "/topic/public"));
        assert!(!a.allows(&anon, Publish, "/topic/public"));
        assert!(a.allows(&carol, Subscribe, "/queue/ops"));
        assert!(a.allows(&ops, Subscribe, "/queue/ops"));
        assert!(!a.allows(&bob, Subscribe, "/queue/ops"));
        // A user literally named "anonymous" is not anonymous.
        assert!(!a.allows(&Principal::user("anonymous"), Subscribe, "/topic/public"));
    }

    #[test]
    fn everyone_includes_anonymous() {
        let a = acl(Deny, vec![rule(&["*"], "/topic/t", &[Subscribe], Allow)]);
        assert!(a.allows(&Principal::default(), Subscribe, "/topic/t"));
        assert!(a.allows(&Principal::user("x"), Subscribe, "/topic/t"));
    }

    #[test]
    fn default_deny_and_allow() {
        let deny = acl(Deny, vec![]);
        assert!(!deny.is_open());
        assert!(!deny.allows(&Principal::user("u"), Publish, "/queue/a"));
        let allow = acl(Allow, vec![]);
        assert!(allow.is_open());
        assert!(allow.allows(&Principal::default(), Publish, "/queue/a"));
        assert!(Acl::default().is_open());
        let ruled = acl(Allow, vec![rule(&["*"], "/x", &[Publish], Deny)]);
        assert!(!ruled.is_open());
        assert!(ruled.allows(&Principal::default(), Publish, "/y"));
    }

    #[test]
    fn user_placeholder() {
        let a = acl(
            Deny,
            vec![
                rule(&["*"], "/queue/inbox.{user}", &[Subscribe], Allow),
                rule(&["*"], "/topic/u-{user}-x/#", &[Publish], Allow),
            ],
        );
        let alice = Principal::user("alice");
        assert!(a.allows(&alice, Subscribe, "/queue/inbox.alice"));
        assert!(!a.allows(&alice, Subscribe, "/queue/inbox.bob"));
        assert!(!a.allows(&alice, Subscribe, "/queue/inbox.alice.x"));
        assert!(!a.allows(&alice, Subscribe, "/queue/inbox.alicex"));
        assert!(!a.allows(&alice, Subscribe, "/queue/inbox."));
        assert!(a.allows(&alice, Publish, "/topic/u-alice-x/a/b"));
        assert!(!a.allows(&alice, Publish, "/topic/u-alic-x/a"));
        assert!(!a.allows(&alice, Publish, "/topic/u-alice-y/a"));
        // Anonymous never matches a {user} rule, even if "*" is in who.
        assert!(!a.allows(&Principal::default(), Subscribe, "/queue/inbox."));
        assert!(!a.allows(&Principal::default(), Subscribe, "/queue/inbox.{user}"));
        assert!(!a.allows(&Principal::user(""), Subscribe, "/queue/inbox."));
    }

    #[test]
    fn user_names_with_special_characters_match_nothing() {
        let a = acl(
            Deny,
            vec![rule(&["*"], "/queue/inbox.{user}", &[Subscribe], Allow)],
        );
        for name in ["a.b", "a/b", "*", "#", "a*", "x#", "{user}"] {
            let p = Principal::user(name);
            for dest in [
                format!("/queue/inbox.{name}"),
                "/queue/inbox.a".into(),
                "/queue/inbox.anything".into(),
                "/queue/inbox.a.b".into(),
            ] {
                assert!(!a.allows(&p, Subscribe, &dest), "{name} -> {dest}");
            }
        }
    }

    #[test]
    fn invalid_rules_are_refused_with_the_rule_named() {
        let bad = |r: AclRule| {
            Acl::from_config(&AclConfig {
                rules: vec![rule(&["*"], "/ok", &[Publish], Allow), r],
                ..AclConfig::default()
            })
            .unwrap_err()
            .to_string()
        };
        let e = bad(rule(&["admin"], "/x", &[Publish], Allow));
        assert!(e.starts_with("[acl] rule 2 (\"/x\")"), "{e}");
        assert!(e.contains("who entry \"admin\""), "{e}");
        for who in ["user:", "role:", "group:x", "", "Anonymous"] {
            let e = bad(rule(&[who], "/x", &[Publish], Allow));
            assert!(e.contains("who entry"), "{who}: {e}");
        }
        let e = bad(rule(&[], "/x", &[Publish], Allow));
        assert!(e.contains("\"who\" is empty"), "{e}");
        let e = bad(rule(&["*"], "/x", &[], Allow));
        assert!(e.contains("\"actions\" is empty"), "{e}");
        let e = bad(rule(&["*"], "", &[Publish], Allow));
        assert!(e.contains("empty"), "{e}");
        for pattern in [
            "/queue/a*",
            "/queue/#x",
            "/q/{usr}",
            "/q/{user}{user}",
            "/q/{user}}",
        ] {
            let e = bad(rule(&["*"], pattern, &[Publish], Allow));
            assert!(e.contains("segment"), "{pattern}: {e}");
        }
    }

    #[test]
    fn refusal_mode_is_kept() {
        let a = Acl::from_config(&AclConfig {
            refusal: RefusalMode::Receipt,
            ..AclConfig::default()
        })
        .unwrap();
        assert_eq!(a.refusal(), RefusalMode::Receipt);
    }
}
