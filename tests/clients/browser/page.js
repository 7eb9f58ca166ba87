// Runs in headless Chromium. Configuration comes from the query string:
//   ?ws=<broker WebSocket URL>&in=<destination to watch>&out=<destination to publish to>
// Everything observed is exposed on window.stompTest for the Node test to read.
(function () {
  'use strict';
  const params = new URLSearchParams(location.search);
  const state = {
    connected: false,
    version: null,
    subscribed: false,
    received: [],
    errors: [],
    closed: [],
  };
  window.stompTest = state;
  const log = (line) => { document.getElementById('log').textContent += line + '\n'; };

  const rxStomp = new RxStomp.RxStomp();
  rxStomp.configure({
    brokerURL: params.get('ws'),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
  });
  rxStomp.stompErrors$.subscribe((frame) => state.errors.push(frame.headers.message || frame.body));
  rxStomp.webSocketErrors$.subscribe(() => state.errors.push('websocket error'));
  rxStomp.connected$.subscribe(() => {
    state.connected = true;
    state.version = rxStomp.stompClient.connectedVersion;
    log('connected, STOMP ' + state.version);
  });

  // Watch the inbound destination; the SUBSCRIBE carries a receipt so the test knows it is live.
  const receipt = 'page-sub-' + Date.now();
  rxStomp.unhandledReceipts$.subscribe((frame) => {
    if (frame.headers['receipt-id'] === receipt) {
      state.subscribed = true;
      log('subscribed');
    }
  });
  rxStomp.watch({ destination: params.get('in'), subHeaders: { receipt } }).subscribe((message) => {
    state.received.push({ body: message.body, headers: Object.assign({}, message.headers) });
    log('received: ' + message.body);
    // Answer requests so the Node side sees a round trip initiated from its end.
    if (message.headers['reply-to']) {
      rxStomp.publish({
        destination: message.headers['reply-to'],
        body: 'page echoes: ' + message.body,
        headers: { 'correlation-id': message.headers['correlation-id'] || '' },
      });
    }
  });

  window.publishFromPage = (body, headers) => {
    rxStomp.publish({ destination: params.get('out'), body, headers: headers || {} });
  };
  window.disconnectPage = () => rxStomp.deactivate();
  rxStomp.activate();
})();
