// The client side of tests/deploy/nginx-test.sh: real @stomp/stompjs clients over wss:// through
// nginx, and raw STOMP over TLS through nginx's stream proxy. Trusts only the test's own CA
// (no disabled certificate checks). Exits non-zero, saying why, on any failure.
//
//   node nginx-client.cjs WSS_URL CA_FILE CONNECTIONS STREAM_HOST:PORT
"use strict";

const fs = require("node:fs");
const tls = require("node:tls");
const { Client } = require("@stomp/stompjs");
const WebSocket = require("ws");

const [wssUrl, caFile, connectionsArg, streamAddr] = process.argv.slice(2);
if (!wssUrl || !caFile || !connectionsArg || !streamAddr) {
  console.error("usage: node nginx-client.cjs WSS_URL CA_FILE CONNECTIONS STREAM_HOST:PORT");
  process.exit(2);
}
const ca = fs.readFileSync(caFile);
const connections = Number(connectionsArg);
const STEP_TIMEOUT_MS = 10000;
// Longer than the nodes' 1 s heart-beat: the connections must stay up through nginx while
// only heart-beats flow.
const IDLE_MS = 3000;

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// One stompjs client over wss:// through nginx; resolves once CONNECTED.
function connect(i) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () =>
        new WebSocket(wssUrl, ["v12.stomp", "v11.stomp", "v10.stomp"], { ca }),
      connectHeaders: { login: `deploy-check-${i}` },
      heartbeatIncoming: 1000,
      heartbeatOutgoing: 1000,
      reconnectDelay: 0, // a dropped connection is a failure, not something to paper over
    });
    client.onConnect = (frame) => resolve({ client, frame });
    client.onStompError = (frame) => reject(new Error(`client ${i}: ERROR ${frame.headers.message}`));
    client.onWebSocketError = () => reject(new Error(`client ${i}: WebSocket error`));
    client.onWebSocketClose = (evt) => {
      client.closedWith = evt.code;
      reject(new Error(`client ${i}: WebSocket closed (${evt.code})`));
    };
    client.activate();
  });
}

// SUBSCRIBE, SEND, and wait for our own MESSAGE on the same connection.
function roundTrip(client, destination, body) {
  return new Promise((resolve, reject) => {
    const sub = client.subscribe(destination, (message) => {
      sub.unsubscribe();
      if (message.body === body) resolve();
      else reject(new Error(`${destination}: got ${JSON.stringify(message.body)}, sent ${JSON.stringify(body)}`));
    });
    client.publish({ destination, body });
  });
}

// Raw STOMP 1.2 over TLS through nginx's stream {} proxy: CONNECT, SUBSCRIBE, SEND, MESSAGE.
function streamRoundTrip() {
  const [host, port] = streamAddr.split(":");
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port: Number(port), ca }, () => {
      socket.write("CONNECT\naccept-version:1.2\nhost:stompede\nlogin:deploy-tcp\n\n\0");
    });
    let received = "";
    let state = "connecting";
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
      received += chunk;
      if (state === "connecting" && received.includes("\0")) {
        if (!received.startsWith("CONNECTED\n")) {
          reject(new Error(`stream: expected CONNECTED, got ${JSON.stringify(received)}`));
          return;
        }
        received = received.slice(received.indexOf("\0") + 1);
        state = "subscribed";
        socket.write("SUBSCRIBE\nid:1\ndestination:/topic/deploy.tcp\nreceipt:sub\n\n\0");
      }
      if (state === "subscribed" && received.includes("RECEIPT\nreceipt-id:sub")) {
        received = "";
        state = "sent";
        socket.write("SEND\ndestination:/topic/deploy.tcp\n\nover tls through nginx\0");
      }
      if (state === "sent" && received.includes("\0")) {
        if (received.startsWith("MESSAGE\n") && received.includes("\n\nover tls through nginx\0")) {
          state = "done";
          socket.end("DISCONNECT\n\n\0");
          resolve();
        } else {
          reject(new Error(`stream: expected our MESSAGE, got ${JSON.stringify(received)}`));
        }
      }
    });
    socket.on("error", reject);
    socket.on("close", () => {
      if (state !== "done") reject(new Error(`stream: closed in state ${state}`));
    });
  });
}

async function main() {
  const clients = [];
  try {
    // Connections are opened one after another and kept open, so least_conn sends them to
    // every upstream node in turn.
    for (let i = 0; i < connections; i++) {
      const { client, frame } = await withTimeout(connect(i), `client ${i} CONNECTED`);
      clients.push(client);
      await withTimeout(roundTrip(client, `/topic/deploy.check.${i}`, `hello ${i}`), `client ${i} round trip`);
      console.log(`client ${i}: connected (STOMP ${frame.headers.version}, heart-beat ${frame.headers["heart-beat"]}), round trip ok`);
    }
    await new Promise((r) => setTimeout(r, IDLE_MS));
    for (const [i, client] of clients.entries()) {
      if (!client.connected) throw new Error(`client ${i} dropped while idle (heart-beats only)`);
      await withTimeout(roundTrip(client, `/topic/deploy.again.${i}`, `again ${i}`), `client ${i} second round trip`);
    }
    console.log(`${clients.length} clients still connected after ${IDLE_MS} ms of heart-beats; second round trips ok`);
    await withTimeout(streamRoundTrip(), "STOMP over TLS through the stream proxy");
    console.log("stream proxy: STOMP over TLS CONNECT/SUBSCRIBE/SEND/MESSAGE ok");
  } finally {
    for (const client of clients) {
      client.onWebSocketClose = () => {};
      await client.deactivate();
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`FAILED: ${err.message}`);
    process.exit(1);
  },
);
