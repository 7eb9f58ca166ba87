//! Edits, redactions and reactions: timeline events about another event
//! (`x-relates-to`). A redaction purges the stored body and client
//! headers of what it takes back (and of a message's edits); history and
//! replay then show the original with `x-redacted-by` and no body.

use crate::actor::Env;
use crate::actor::Turn;
use crate::record::{Event, EventKind};
use crate::repo;
use crate::rooms::{Caller, Relation};
use crate::state::{headers, Draft, State};
use bytes::Bytes;

/// The most edits of one message a redaction purges in its turn.
const MAX_EDITS: usize = 10_000;

/// The reaction key of a stored reaction event.
fn reaction_key(event: &Event) -> Option<&str> {
    event
        .headers
        .iter()
        .find(|(n, _)| n == "x-reaction")
        .map(|(_, v)| v.as_str())
}

impl State {
    /// An edit, redaction or reaction of event `to` by `caller`.
    pub(crate) fn relate(
        &mut self,
        env: &Env,
        turn: &mut Turn,
        caller: &Caller,
        relation: Relation,
        to: u64,
        draft: Draft,
    ) {
        let command = relation.command();
        if !self.is_member(&caller.user) {
            return self.not_member(env, turn, caller, command);
        }
        if self.answered_before(env, turn, caller, command, draft.client_id()) {
            return;
        }
        let store = &*env.ctx.store;
        let original = match repo::pending_event(store, &turn.ops, &env.id, to) {
            Ok(Some(event)) => event,
            Ok(None) => return turn.fail(caller, command, &format!("no event {to}")),
            Err(e) => return turn.fail(caller, command, &e.to_string()),
        };
        if let Some(by) = original.redacted_by {
            if relation == Relation::Redact {
                let h = headers(&[("x-seq", by.to_string()), ("x-already", "true".into())]);
                return turn.ok(caller, command, h, None);
            }
            return turn.fail(caller, command, &format!("event {to} was redacted"));
        }
        let result = match relation {
            Relation::Edit => self.edit(env, turn, caller, &original, draft),
            Relation::React(key) => self.react(env, turn, caller, &original, &key, draft),
            Relation::Redact => self.redact(env, turn, caller, original, draft),
        };
        match result {
            Ok(h) => turn.ok(caller, command, h, None),
            Err(e) => turn.fail(caller, command, &e),
        }
    }

    fn edit(
        &mut self,
        env: &Env,
        turn: &mut Turn,
        caller: &Caller,
        original: &Event,
        draft: Draft,
    ) -> Result<stompede_codec::Headers, String> {
        if original.kind != EventKind::Message {
            return Err("only messages are edited".into());
        }
        if original.sender != caller.user {
            return Err("only the sender edits a message".into());
        }
        let event = self.append(env, turn, draft.kind(EventKind::Edit));
        repo::write::edit(&mut turn.ops, &env.id, original.seq, event.seq, true);
        Ok(self.stored(&event))
    }

    fn react(
        &mut self,
        env: &Env,
        turn: &mut Turn,
        caller: &Caller,
        original: &Event,
        key: &str,
        draft: Draft,
    ) -> Result<stompede_codec::Headers, String> {
        if original.kind != EventKind::Message {
            return Err("reactions are to messages".into());
        }
        let store = &*env.ctx.store;
        let known = repo::reaction(store, &turn.ops, &env.id, original.seq, &caller.user, key)
            .map_err(|e| e.to_string())?;
        if let Some(seq) = known {
            return Ok(headers(&[
                ("x-seq", seq.to_string()),
                ("x-epoch", self.meta.epoch.clone()),
                ("x-duplicate", "true".into()),
            ]));
        }
        let draft = draft
            .kind(EventKind::Reaction)
            .header("x-reaction", key)
            .body(Bytes::new());
        let event = self.append(env, turn, draft);
        repo::write::reaction(
            &mut turn.ops,
            &env.id,
            original.seq,
            &caller.user,
            key,
            Some(event.seq),
        );
        Ok(self.stored(&event))
    }

    fn redact(
        &mut self,
        env: &Env,
        turn: &mut Turn,
        caller: &Caller,
        original: Event,
        draft: Draft,
    ) -> Result<stompede_codec::Headers, String> {
        if !matches!(
            original.kind,
            EventKind::Message | EventKind::Edit | EventKind::Reaction
        ) {
            return Err("only messages, edits and reactions are redacted".into());
        }
        let moderates = self
            .members
            .get(&caller.user)
            .is_some_and(|m| m.role.moderates());
        if original.sender != caller.user && !moderates {
            return Err("only the sender or a moderator redacts".into());
        }
        let store = &*env.ctx.store;
        let edits = match original.kind {
            EventKind::Message => {
                repo::edits_of(store, &turn.ops, &env.id, original.seq, MAX_EDITS)
                    .map_err(|e| e.to_string())?
            }
            _ => Vec::new(),
        };
        let mut purged = Vec::with_capacity(1 + edits.len());
        for seq in edits {
            match repo::pending_event(store, &turn.ops, &env.id, seq) {
                Ok(Some(edit)) if edit.redacted_by.is_none() => purged.push(edit),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let event = self.append(env, turn, draft.kind(EventKind::Redact).body(Bytes::new()));
        match (original.kind, original.relates_to) {
            (EventKind::Reaction, Some(message)) => {
                if let Some(key) = reaction_key(&original) {
                    let (user, key) = (original.sender.clone(), key.to_owned());
                    repo::write::reaction(&mut turn.ops, &env.id, message, &user, &key, None);
                }
            }
            (EventKind::Edit, Some(message)) => {
                repo::write::edit(&mut turn.ops, &env.id, message, original.seq, false);
            }
            _ => {}
        }
        purged.push(original);
        for mut target in purged {
            // A reaction keeps its key: it is not content.
            target.headers.retain(|(n, _)| n == "x-reaction");
            target.body = Bytes::new();
            target.redacted_by = Some(event.seq);
            repo::write::event(&mut turn.ops, &env.id, &target);
        }
        Ok(self.stored(&event))
    }

    fn stored(&self, event: &Event) -> stompede_codec::Headers {
        headers(&[
            ("x-seq", event.seq.to_string()),
            ("x-epoch", self.meta.epoch.clone()),
        ])
    }
}
