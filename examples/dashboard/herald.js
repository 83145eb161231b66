// herald.js: a small, dependency-free browser client for a herald Negotiated channel
// (herald::Channel<herald::Negotiated<WebSocket, Sse, Polling>>). Tries WebSocket, falls back to
// SSE, then to long polling; reconnects with exponential backoff and full jitter; resumes from
// the last id; drops duplicates; surfaces reset notices; sends messages over WebSocket, or by
// POST to the same path in the degraded modes. See docs/negotiation.md.
//
//   const live = herald.connect("/live", {
//     topics: ["metrics"],               // what to subscribe to (empty: the channel's default)
//     transport: "auto",                 // or "websocket" | "sse" | "polling" to force one
//     onEvent(e) {},                     // {id, topic, event, data, transport}
//     onReply(text) {},                  // messages the server sent to this client only
//     onReset(r) {},                     // {topic, cursor, transport}: events were lost
//     onStatus(s) {},                    // {state: "connecting"|"open"|"waiting"|"closed", transport, delay}
//   });
//   await live.send("hello");            // WebSocket frame, or POST (resolves with the replies)
//   live.close();
(function (root) {
  "use strict";

  var ALL = ["websocket", "sse", "polling"];

  function connect(url, options) {
    var o = Object.assign({
      topics: [],
      transport: "auto",
      minDelay: 500,          // backoff: first ceiling (ms)
      maxDelay: 30000,        // backoff: largest ceiling (ms)
      pollWait: 25,           // long-poll wait (s)
      onEvent: function () {}, onReply: function () {}, onReset: function () {},
      onStatus: function () {}, onError: function () {},
    }, options || {});

    var base = new URL(url, root.location ? root.location.href : undefined);
    var last = {};            // topic -> last id seen ("*": events whose topic the wire omits)
    var lastId = 0;           // the highest id seen on any topic
    var order = [];           // transports to try, best first
    var index = 0;            // the transport being tried
    var attempt = 0;          // failures since the last successful open
    var current = null;       // {name, opened, stop(), send?()}
    var timer = null;
    var closed = false;

    function status(state, extra) {
      o.onStatus(Object.assign({ state: state, transport: current ? current.name : order[index] }, extra || {}));
    }

    function target(params) {
      var u = new URL(base.href);
      o.topics.forEach(function (t) { u.searchParams.append("topic", t); });
      Object.keys(params || {}).forEach(function (k) { u.searchParams.set(k, params[k]); });
      return u;
    }

    // Duplicate filter: an event is new if its id is above the last one seen for its topic.
    function deliver(transport, id, topic, event, data) {
      var key = topic == null ? "*" : topic;
      var floor = key in last ? last[key] : 0;
      if (topic == null && lastId > floor) floor = lastId;
      if (id <= floor) return;
      last[key] = id;
      if (id > lastId) lastId = id;
      o.onEvent({ id: id, topic: topic, event: event, data: data, transport: transport });
    }

    // A reset notice: events up to `cursor` are gone; continue from it (it may lower the floor).
    function reset(transport, topic, cursor) {
      if (topic == null) { Object.keys(last).forEach(function (k) { last[k] = cursor; }); last["*"] = cursor; }
      else last[topic] = cursor;
      lastId = Math.max.apply(null, [0].concat(Object.keys(last).map(function (k) { return last[k]; })));
      o.onReset({ topic: topic, cursor: cursor, transport: transport });
    }

    function parse(text) { try { return JSON.parse(text); } catch (e) { return text; } }

    function opened() {
      attempt = 0;
      current.opened = true;
      status("open");
    }

    // The transport failed: fall back if it never opened, else reconnect after a backoff.
    function failed(t) {
      if (closed || t !== current) return;
      current.stop();
      current = null;
      if (!t.opened && index + 1 < order.length) { index += 1; return start(); }
      if (!t.opened) index = 0;  // every transport failed to open: retry the best after a pause
      var ceiling = Math.min(o.maxDelay, o.minDelay * Math.pow(2, attempt));
      var delay = Math.random() * ceiling;  // full jitter
      attempt += 1;
      status("waiting", { delay: delay });
      timer = setTimeout(start, delay);
    }

    function start() {
      timer = null;
      if (closed) return;
      var name = order[index];
      current = ({ websocket: ws, sse: sse, polling: poll })[name]();
      status("connecting");
    }

    function ws() {
      var u = target();
      u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
      u.searchParams.delete("topic");  // subscribe by message, each topic with its own cursor
      var t = { name: "websocket", opened: false };
      var sock = new root.WebSocket(u.href);
      var pendingBinary = null;
      sock.binaryType = "arraybuffer";
      sock.onopen = function () {
        o.topics.forEach(function (topic) {
          var msg = { subscribe: topic };
          if (topic in last) msg.since = last[topic];
          else if (lastId > 0) msg.since = lastId;
          sock.send(JSON.stringify(msg));
        });
        opened();
      };
      sock.onmessage = function (m) {
        if (typeof m.data !== "string") {  // the payload of a binary event announced just before
          if (pendingBinary) deliver("websocket", pendingBinary.id, pendingBinary.topic, pendingBinary.event, m.data);
          pendingBinary = null;
          return;
        }
        var j = parse(m.data);
        if (j && typeof j === "object" && !Array.isArray(j)) {
          if (typeof j.id === "number" && typeof j.topic === "string") {
            if (j.event === "reset" && j.data && typeof j.data.cursor === "number") return reset("websocket", j.topic, j.data.cursor);
            if (j.binary) { pendingBinary = j; return; }
            return deliver("websocket", j.id, j.topic, j.event, j.data);
          }
          if ("subscribed" in j || "unsubscribed" in j) return;
          if ("error" in j && Object.keys(j).every(function (k) { return k === "error" || k === "topic" || k === "message"; }))
            return o.onError(j);
        }
        o.onReply(m.data);
      };
      sock.onclose = function () { failed(t); };
      t.stop = function () { sock.onopen = sock.onmessage = sock.onclose = null; try { sock.close(); } catch (e) { /* closed */ } };
      t.send = function (text) { sock.send(text); return Promise.resolve([]); };
      t.ready = function () { return sock.readyState === 1; };
      return t;
    }

    function sse() {
      // Envelopes: every event's data names its topic, as on WebSocket and polling.
      var params = { envelope: "1" };
      if (lastId > 0) params.lastEventId = String(lastId);
      var t = { name: "sse", opened: false };
      var es = new root.EventSource(target(params).href, { withCredentials: false });
      es.onmessage = function (m) {
        var e = parse(m.data);
        if (!e || typeof e.id !== "number") return;
        if (e.event === "reset" && e.data && typeof e.data.cursor === "number") return reset("sse", e.topic || null, e.data.cursor);
        deliver("sse", e.id, e.topic, e.event, e.data);
      };
      es.onopen = function () { if (!t.opened) opened(); };
      // EventSource reconnects by itself (with Last-Event-ID) after a dropped stream; only a
      // refused request (readyState CLOSED) or a stream that never opened is ours to handle.
      es.onerror = function () { if (es.readyState === 2 || !t.opened) failed(t); };
      t.stop = function () { es.close(); };
      return t;
    }

    function poll() {
      var t = { name: "polling", opened: false, stopped: false };
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var since = lastId > 0 ? lastId : null;
      function next() {
        if (t.stopped) return;
        var params = { wait: String(o.pollWait) };
        if (since != null) params.since = String(since);
        else delete params.wait;  // the first short poll learns the cursor
        root.fetch(target(params).href, { cache: "no-store", signal: controller && controller.signal })
          .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
          .then(function (answer) {
            if (t.stopped) return;
            if (!t.opened) opened();
            if (answer.reset) reset("polling", null, answer.cursor);
            (answer.events || []).forEach(function (e) { deliver("polling", e.id, e.topic, e.event, e.data); });
            since = answer.cursor;
            next();
          })
          .catch(function () { if (!t.stopped) failed(t); });
      }
      t.stop = function () { t.stopped = true; if (controller) controller.abort(); };
      next();
      return t;
    }

    // Messages: a WebSocket frame when the socket is up, else a POST to the same path whose
    // response holds the replies (a JSON array; a binary reply is {"binary": base64}).
    function send(text) {
      if (current && current.send && current.ready()) return current.send(text);
      return root.fetch(base.href, {
        method: "POST", body: text, headers: { "Content-Type": "text/plain;charset=UTF-8" },
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (replies) {
        replies.forEach(function (r) { o.onReply(r); });
        return replies;
      });
    }

    function close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (current) current.stop();
      current = null;
      status("closed");
    }

    // Which transports to try: forced, else what the server offers (GET path?negotiate).
    function begin(offered) {
      if (closed) return;
      if (o.transport !== "auto") order = [o.transport];
      else order = ALL.filter(function (n) { return !offered || offered.indexOf(n) >= 0; });
      if (typeof root.WebSocket !== "function") order = order.filter(function (n) { return n !== "websocket"; });
      if (typeof root.EventSource !== "function") order = order.filter(function (n) { return n !== "sse"; });
      if (order.length === 0) order = ["polling"];
      index = 0;
      start();
    }
    var probe = new URL(base.href);
    probe.searchParams.set("negotiate", "");
    root.fetch(probe.href, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { begin(j && j.transports); }, function () { begin(null); });

    return {
      send: send,
      close: close,
      get transport() { return current && current.opened ? current.name : null; },
      get lastId() { return lastId; },
    };
  }

  root.herald = { connect: connect };
})(typeof window !== "undefined" ? window : globalThis);
