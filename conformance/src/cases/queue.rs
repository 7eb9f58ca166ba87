//! Point-to-point destinations (the spec leaves destination semantics to
//! the broker; these check the usual `/queue/` contract).

use anyhow::{Context as _, Result};

use super::{bodies, case, ensure, Case, Ctx};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "queue/one-consumer-each",
            Core,
            "with two subscribers on a queue each message goes to exactly one of them",
            one_consumer_each
        ),
        case!(
            "queue/stored-until-subscribe",
            Core,
            "messages sent before anyone subscribes are delivered when one does",
            stored_until_subscribe
        ),
        case!(
            "ext/queue-fifo-order",
            Extension,
            "one producer, one consumer: messages arrive in the order sent",
            order_single_consumer
        ),
    ]
}

async fn one_consumer_each(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("p2p");
    let mut a = ctx.connect12().await?;
    let mut b = ctx.connect12().await?;
    a.subscribe(&dest, "a", "auto").await?;
    b.subscribe(&dest, "b", "auto").await?;
    let mut sender = ctx.connect12().await?;
    let n = 10;
    for i in 0..n {
        sender.publish(&dest, &format!("m{i:02}")).await?;
    }
    let mut got = Vec::new();
    // Drain both until the quiet period passes with nothing new.
    loop {
        let before = got.len();
        for c in [&mut a, &mut b] {
            while let Ok(m) = c.recv_within(ctx.quiet() / 2).await {
                got.push(m);
            }
        }
        if got.len() == before {
            break;
        }
    }
    let mut want: Vec<String> = (0..n).map(|i| format!("m{i:02}")).collect();
    want.sort();
    ensure!(
        bodies(&got) == want,
        "expected each of {n} messages exactly once across two subscribers, got {:?}",
        bodies(&got)
    );
    sender.disconnect().await?;
    a.disconnect().await?;
    b.disconnect().await
}

async fn stored_until_subscribe(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("stored");
    let mut sender = ctx.connect12().await?;
    for body in ["early-1", "early-2", "early-3"] {
        sender.publish(&dest, body).await?;
    }
    sender.disconnect().await?;
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "late", "auto").await?;
    let msgs = c
        .expect_messages(3)
        .await
        .context("messages queued before the subscription")?;
    ensure!(
        bodies(&msgs) == ["early-1", "early-2", "early-3"],
        "got {:?}",
        bodies(&msgs)
    );
    c.expect_silence(ctx.quiet() / 2).await?;
    c.disconnect().await
}

async fn order_single_consumer(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("order");
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "s", "auto").await?;
    let mut sender = ctx.connect12().await?;
    for i in 0..20 {
        sender
            .send_frame("SEND", &[("destination", &dest)], format!("{i}"))
            .await?;
    }
    sender.publish(&dest, "end").await?;
    let msgs = c.expect_messages(21).await?;
    let got: Vec<String> = msgs.iter().map(super::body).collect();
    let mut want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    want.push("end".into());
    ensure!(got == want, "order {got:?}");
    sender.disconnect().await?;
    c.disconnect().await
}
