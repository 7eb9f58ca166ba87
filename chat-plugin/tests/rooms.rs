//! Rooms end to end: creation (group and direct), membership rules,
//! invites and kicks, listing with a cursor, metadata, replies.

mod common;

use common::{body, frame, json, Peer};
use std::time::Duration;
use stompede::codec::Command;

#[tokio::test]
async fn two_users_chat_and_a_third_is_refused() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    let mut bob = Peer::connect(&broker, "bob").await;
    let mut carol = Peer::connect(&broker, "carol").await;
    alice.create_group("lobby", "bob", false).await;
    let joined = bob.command("/room/lobby/join", &[]).await;
    assert_eq!(joined.get("x-error"), None);

    alice.join_timeline("t", "lobby", &[]).await;
    assert_eq!(alice.replay().await.1.get("x-recovered"), Some("true"));
    bob.join_timeline("t", "lobby", &[]).await;
    bob.replay().await;

    let receipt = alice.post("lobby", "hello bob", "a-1").await;
    assert_eq!(receipt.get("x-error"), None);
    for peer in [&mut alice, &mut bob] {
        let m = peer.expect_event("message").await;
        assert_eq!(body(&m), "hello bob");
        assert_eq!(m.get("x-sender"), Some("alice"));
        assert_eq!(m.get("subscription"), Some("t"));
        assert_eq!(m.get("content-type"), Some("text/plain"));
    }
    bob.post("lobby", "hi alice", "b-1").await;
    assert_eq!(body(&alice.expect_event("message").await), "hi alice");
    assert_eq!(body(&bob.expect_event("message").await), "hi alice");

    // carol is not a member: a denied MESSAGE, a RECEIPT with x-error, and
    // the connection stays.
    carol
        .send(frame(
            Command::Subscribe,
            &[("id", "t"), ("destination", "/room/lobby")],
        ))
        .await;
    let denied = carol.expect(Command::Message).await;
    assert_eq!(denied.get("x-event"), Some("denied"));
    let refused = carol.post("lobby", "let me in", "c-1").await;
    assert!(refused
        .get("x-error")
        .is_some_and(|e| e.contains("not a member")));
    let join = carol.command("/room/lobby/join", &[]).await;
    assert!(join
        .get("x-error")
        .is_some_and(|e| e.contains("not invited")));
    alice.expect_silence(Duration::from_millis(200)).await;
    let still = carol.command("/rooms/list", &[]).await;
    assert_eq!(still.get("x-count"), Some("0"));
}

#[tokio::test]
async fn anonymous_sessions_are_refused_softly() {
    let broker = common::start().await;
    let mut anon = Peer::anonymous(&broker).await;
    let r = anon.command("/rooms/create", &[("x-room-id", "x")]).await;
    assert_eq!(r.get("x-error"), Some("chat needs an authenticated user"));
    let r = anon.command("/rooms/list", &[]).await;
    assert!(r.get("x-error").is_some());
}

#[tokio::test]
async fn direct_rooms_are_deterministic_and_idempotent() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.inbox().await;
    let first = alice
        .command("/rooms/create", &[("x-kind", "direct"), ("x-with", "bob")])
        .await;
    assert_eq!(first.get("x-room"), Some("dm~alice~bob"));
    assert_eq!(first.get("x-created"), Some("true"));
    let added = bob.expect_event("added").await;
    assert_eq!(added.get("x-room"), Some("dm~alice~bob"));
    assert_eq!(added.get("x-sender"), Some("alice"));

    let again = bob
        .command(
            "/rooms/create",
            &[("x-kind", "direct"), ("x-with", "alice")],
        )
        .await;
    assert_eq!(again.get("x-room"), Some("dm~alice~bob"));
    assert_eq!(again.get("x-created"), Some("false"));
    let reply = bob.expect_event("reply").await;
    assert_eq!(json(&reply)["created"], false);

    // Both are members at once: no join needed.
    bob.join_timeline("dm", "dm~alice~bob", &[("x-stream-offset", "first")])
        .await;
    let (events, end) = bob.replay().await;
    let kinds: Vec<_> = events.iter().map(|e| e.get("x-event")).collect();
    assert_eq!(kinds, [Some("create"), Some("join"), Some("join")]);
    assert_eq!(end.get("x-recovered"), Some("true"));
    alice.post("dm~alice~bob", "psst", "1").await;
    assert_eq!(body(&bob.expect_event("message").await), "psst");

    // Leaving and creating again brings the user back.
    let left = alice.command("/room/dm~alice~bob/leave", &[]).await;
    assert_eq!(left.get("x-error"), None);
    assert!(alice
        .post("dm~alice~bob", "x", "2")
        .await
        .get("x-error")
        .is_some());
    let back = alice
        .command("/rooms/create", &[("x-kind", "direct"), ("x-with", "bob")])
        .await;
    assert_eq!(back.get("x-error"), None);
    assert_eq!(
        alice.post("dm~alice~bob", "back", "3").await.get("x-error"),
        None
    );
    let self_dm = alice
        .command(
            "/rooms/create",
            &[("x-kind", "direct"), ("x-with", "alice")],
        )
        .await;
    assert!(self_dm.get("x-error").is_some());
}

#[tokio::test]
async fn invites_kicks_and_roles() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    let mut bob = Peer::connect(&broker, "bob").await;
    let mut carol = Peer::connect(&broker, "carol").await;
    carol.inbox().await;
    alice.create_group("team", "bob", false).await;
    bob.command("/room/team/join", &[]).await;

    // In a private room only the owner and moderators invite.
    let r = bob
        .command("/room/team/invite", &[("x-user", "carol")])
        .await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("moderators")));
    let r = alice
        .command("/room/team/invite", &[("x-user", "carol")])
        .await;
    assert_eq!(r.get("x-error"), None);
    let invited = carol.expect_event("invited").await;
    assert_eq!(invited.get("x-room"), Some("team"));
    assert_eq!(invited.get("x-name"), Some("team"));
    // Invited is not a member yet.
    assert!(carol
        .post("team", "early", "1")
        .await
        .get("x-error")
        .is_some());
    carol.command("/room/team/join", &[]).await;
    carol.join_timeline("t", "team", &[]).await;
    carol.replay().await;

    // Members don't kick; nobody kicks the owner.
    let r = bob.command("/room/team/kick", &[("x-user", "carol")]).await;
    assert!(r
        .get("x-error")
        .is_some_and(|e| e.contains("owner and moderators")));
    let r = alice
        .command("/room/team/kick", &[("x-user", "alice")])
        .await;
    assert!(r.get("x-error").is_some());
    let r = alice
        .command("/room/team/kick", &[("x-user", "nobody")])
        .await;
    assert!(r.get("x-error").is_some());

    let r = alice
        .command("/room/team/kick", &[("x-user", "carol")])
        .await;
    assert_eq!(r.get("x-error"), None);
    let kick = carol.expect_event("kick").await;
    assert_eq!(kick.get("x-target"), Some("carol"));
    assert_eq!(kick.get("x-sender"), Some("alice"));
    carol.expect_event("kicked").await;
    // Her subscription no longer gets the timeline; posting is refused.
    alice.post("team", "after the kick", "a1").await;
    carol
        .expect_silence_on("t", Duration::from_millis(300))
        .await;
    assert!(carol
        .post("team", "hey", "2")
        .await
        .get("x-error")
        .is_some());
    let r = carol.command("/room/team/join", &[]).await;
    assert!(
        r.get("x-error").is_some(),
        "a kicked user needs a new invite"
    );
}

#[tokio::test]
async fn public_rooms_are_joined_and_left() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    let mut dave = Peer::connect(&broker, "dave").await;
    alice.create_group("plaza", "", true).await;
    let r = dave.command("/room/plaza/join", &[]).await;
    assert_eq!(r.get("x-error"), None);
    let again = dave.command("/room/plaza/join", &[]).await;
    assert_eq!(again.get("x-already"), Some("true"));
    assert_eq!(dave.post("plaza", "hi", "1").await.get("x-error"), None);
    // Anyone in a public room may invite.
    let r = dave
        .command("/room/plaza/invite", &[("x-user", "erin")])
        .await;
    assert_eq!(r.get("x-error"), None);
    let r = dave.command("/room/plaza/leave", &[]).await;
    assert_eq!(r.get("x-error"), None);
    assert!(dave
        .post("plaza", "gone", "2")
        .await
        .get("x-error")
        .is_some());
    let r = dave.command("/room/nowhere/join", &[]).await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("no room")));
    let dup = alice
        .command("/rooms/create", &[("x-room-id", "plaza")])
        .await;
    assert!(dup.get("x-error").is_some_and(|e| e.contains("exists")));
}

#[tokio::test]
async fn my_rooms_are_listed_with_a_cursor() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.inbox().await;
    for room in ["r1", "r2", "r3", "r4", "r5"] {
        alice.create_group(room, "", false).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut headers = vec![("x-limit", "2".to_owned())];
        if let Some(c) = &cursor {
            headers.push(("x-after", c.clone()));
        }
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let receipt = alice.command("/rooms/list", &pairs).await;
        let reply = alice.expect_reply("list").await;
        let page = json(&reply);
        for room in page["rooms"].as_array().expect("rooms") {
            assert_eq!(room["role"], "owner");
            seen.push(room["room"].as_str().expect("id").to_owned());
        }
        cursor = receipt.get("x-next").map(str::to_owned);
        assert_eq!(page["next"].as_str(), cursor.as_deref());
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["r1", "r2", "r3", "r4", "r5"]);
}

#[tokio::test]
async fn info_replies_go_to_reply_to_with_the_correlation_id() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice
        .request(frame(
            Command::Subscribe,
            &[("id", "rpc"), ("destination", "/user/queue/rpc")],
        ))
        .await;
    alice.create_group("meta", "bob", false).await;
    alice
        .command(
            "/room/meta/info",
            &[("reply-to", "/user/queue/rpc"), ("correlation-id", "q-7")],
        )
        .await;
    let reply = alice.expect_event("reply").await;
    assert_eq!(reply.get("subscription"), Some("rpc"));
    assert_eq!(reply.get("correlation-id"), Some("q-7"));
    assert_eq!(reply.get("x-command"), Some("info"));
    let info = json(&reply);
    assert_eq!(info["room"], "meta");
    assert_eq!(info["kind"], "group");
    assert_eq!(info["members"][0]["user"], "alice");
    assert_eq!(info["members"][0]["role"], "owner");
    assert_eq!(info["members"][1]["role"], "invited");

    // Errors reach reply-to too; a reply-to outside /user/ is refused.
    alice
        .command(
            "/room/meta/kick",
            &[
                ("reply-to", "/user/queue/rpc"),
                ("correlation-id", "q-8"),
                ("x-user", "zed"),
            ],
        )
        .await;
    let error = alice.expect_event("error").await;
    assert_eq!(error.get("correlation-id"), Some("q-8"));
    assert!(error.get("x-error").is_some());
    let r = alice
        .command("/room/meta/info", &[("reply-to", "/topic/elsewhere")])
        .await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("/user/")));
}

#[tokio::test]
async fn the_creators_other_sessions_learn_of_a_new_room() {
    let broker = common::start().await;
    let mut tab1 = Peer::connect(&broker, "alice").await;
    let mut tab2 = Peer::connect(&broker, "alice").await;
    tab2.inbox().await;
    tab2.expect_event("unread-snapshot").await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.inbox().await;
    bob.expect_event("unread-snapshot").await;

    tab1.create_group("team", "bob", false).await;
    let created = tab2.expect_event("created").await;
    assert_eq!(created.get("x-room"), Some("team"));
    assert_eq!(created.get("x-sender"), Some("alice"));
    assert_eq!(created.get("x-kind"), Some("group"));
    assert_eq!(created.get("x-name"), Some("team"));
    assert_eq!(
        bob.expect_event("invited").await.get("x-room"),
        Some("team")
    );

    let r = tab1
        .command("/rooms/create", &[("x-kind", "direct"), ("x-with", "bob")])
        .await;
    assert_eq!(r.get("x-created"), Some("true"));
    let created = tab2.expect_event("created").await;
    assert_eq!(created.get("x-room"), Some("dm~alice~bob"));
    assert_eq!(created.get("x-kind"), Some("direct"));
    let added = bob.expect_event("added").await;
    assert_eq!(added.get("x-room"), Some("dm~alice~bob"));
    // Creating it again tells nobody.
    tab1.command("/rooms/create", &[("x-kind", "direct"), ("x-with", "bob")])
        .await;
    while let Some(Some(f)) = tab2.try_frame(Duration::from_millis(300)).await {
        assert_ne!(f.get("x-event"), Some("created"), "{f:?}");
    }
}

#[tokio::test]
async fn the_owner_promotes_and_demotes_moderators() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("team", "bob,carol,dave", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.inbox().await;
    bob.expect_event("unread-snapshot").await;
    bob.command("/room/team/join", &[]).await;
    let mut carol = Peer::connect(&broker, "carol").await;
    carol.command("/room/team/join", &[]).await;
    alice.join_timeline("t", "team", &[]).await;
    alice.replay().await;

    // Only members are promoted, only by the owner, only to known roles.
    let role = |user: &'static str, role: &'static str| [("x-user", user), ("x-role", role)];
    let r = alice
        .command("/room/team/role", &role("dave", "moderator"))
        .await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("not a member")));
    let r = alice
        .command("/room/team/role", &role("bob", "owner"))
        .await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("x-role")));
    let r = carol
        .command("/room/team/role", &role("carol", "moderator"))
        .await;
    assert_eq!(
        r.get("x-error"),
        Some("only the owner promotes and demotes")
    );

    let r = alice
        .command("/room/team/role", &role("bob", "moderator"))
        .await;
    assert_eq!(r.get("x-error"), None, "{r:?}");
    let promoted = common::seq(&r);
    let event = alice.expect_event("role").await;
    assert_eq!(common::seq(&event), promoted);
    assert_eq!(event.get("x-target"), Some("bob"));
    assert_eq!(event.get("x-role"), Some("moderator"));
    assert_eq!(event.get("x-sender"), Some("alice"));
    let notice = bob.expect_event("role").await;
    assert_eq!(
        (notice.get("x-room"), notice.get("x-role")),
        (Some("team"), Some("moderator"))
    );
    let again = alice
        .command("/room/team/role", &role("bob", "moderator"))
        .await;
    assert_eq!(again.get("x-already"), Some("true"));
    bob.command("/rooms/list", &[]).await;
    assert_eq!(
        json(&bob.expect_reply("list").await)["rooms"][0]["role"],
        "moderator"
    );
    // A moderator invites to the private room, and promotes nobody.
    let r = bob
        .command("/room/team/invite", &[("x-user", "erin")])
        .await;
    assert_eq!(r.get("x-error"), None, "{r:?}");
    let r = bob
        .command("/room/team/role", &role("carol", "moderator"))
        .await;
    assert!(r.get("x-error").is_some());

    // Demoted, bob may no longer invite to the private room.
    alice
        .command("/room/team/role", &role("bob", "member"))
        .await;
    let event = alice.expect_event("role").await;
    assert_eq!(event.get("x-role"), Some("member"));
    let r = bob
        .command("/room/team/invite", &[("x-user", "frank")])
        .await;
    assert!(r
        .get("x-error")
        .is_some_and(|e| e.contains("only the owner")));
    // The history keeps the change; the info shows the roles.
    alice
        .command("/room/team/info", &[("reply-to", "/temp-queue/i")])
        .await;
    let info = json(&alice.expect_reply("info").await);
    let roles: Vec<_> = info["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["user"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(roles.contains(&("bob", "member")), "{roles:?}");
    assert!(roles.contains(&("alice", "owner")), "{roles:?}");
}
