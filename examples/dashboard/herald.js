// herald.js: a small, dependency-free browser client for a herald Negotiated channel
// (herald::Channel<herald::Negotiated<WebSocket, Sse, Polling>>). Tries WebSocket, falls back to
// SSE, then to long polling; a transport counts as working only once data (an event or a server
// heartbeat) arrived on it, so one that "opens" and then delivers nothing (a proxy that passes
// the upgrade or the SSE headers and holds back the rest), or that stalls later, is given up for
// the next one; better transports are probed again later. Reconnects with exponential backoff
// and full jitter; resumes from its positions; drops duplicates; surfaces reset notices; sends
// messages over WebSocket, or by POST to the same path in the degraded modes. See
// docs/negotiation.md.
//
//   const live = herald.connect("/live", {
//     topics: ["metrics"],               // what to subscribe to (empty: the channel's default)
//     transport: "auto",                 // or "websocket" | "sse" | "polling" to force one
//     onEvent(e) {},                     // {id, topic, event, data, transport}
//     onReply(text) {},                  // messages the server sent to this client only
//     onReset(r) {},                     // {topic, cursor, transport}: events were lost
//     onGap(g) {},                       // {id, reason, missed: [{topic, first, last, count}], transport}:
//                                        //   the server dropped these for a slow client (drop_oldest)
//     onStatus(s) {},                    // {state: "connecting"|"open"|"waiting"|"closed", transport, delay, reason}
//     ticket: async () => (await fetch("/ticket", {method: "POST"})).text(),  // optional: a fresh
//                                        // single-use ticket (herald::TicketBook) for every request
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
      connectTimeout: 10000,  // a transport must open within this (ms): upgrade, SSE headers, first poll
      proofTimeout: 5000,     // ... and deliver its first data within this after it opened (ms)
      stallFactor: 2,         // no data for the server's heartbeat period x this: stalled
      probeAfter: 120000,     // after a fallback, probe the better transports after this (ms) ...
      probeMax: 1800000,      // ... doubling while none works, up to this
      onEvent: function () {}, onReply: function () {}, onReset: function () {},
      onGap: function () {},
      onStatus: function () {}, onError: function () {},
      ticket: null,           // () => ticket or Promise of one: sent as ?ticket= on every request
    }, options || {});

    var base = new URL(url, root.location ? root.location.href : undefined);
    var storageKey = "herald.transport " + base.href;
    var last = {};            // topic -> last id delivered ("*": events whose topic the wire omits)
    var floor = 0;            // every followed topic is complete up to this id (0: unknown)
    var order = [];           // transports to try, best first
    var index = 0;            // order[index] is the current transport
    var attempt = 0;          // failures since the last transport that worked
    var current = null;       // {name, proved, stop(), send?()}
    var candidate = null;     // a better transport being probed, with its rank in order
    var timer = null;
    var probeTimer = null;
    var probeDelay = o.probeAfter;
    var closed = false;

    function status(state, extra) {
      o.onStatus(Object.assign({ state: state, transport: current ? current.name : order[index] }, extra || {}));
    }

    function target(params, ticket) {
      var u = new URL(base.href);
      o.topics.forEach(function (t) { u.searchParams.append("topic", t); });
      Object.keys(params || {}).forEach(function (k) { u.searchParams.set(k, params[k]); });
      if (ticket) u.searchParams.set("ticket", ticket);
      return u;
    }

    // Tickets are single-use: each request that opens, polls, negotiates or posts gets a fresh
    // one from options.ticket (the application mints it behind its own auth). Without the
    // option, `then` runs at once with no ticket.
    function withTicket(then, failed) {
      if (!o.ticket) return then(null);
      return Promise.resolve().then(o.ticket).then(then, failed);
    }

    // The working transport, kept for this browser tab: a reload starts there, not at the top.
    function remembered() {
      try { return root.sessionStorage ? root.sessionStorage.getItem(storageKey) : null; } catch (e) { return null; }
    }
    function remember(name) {
      try { if (root.sessionStorage && o.transport === "auto") root.sessionStorage.setItem(storageKey, name); } catch (e) { /* private mode */ }
    }

    // Positions ------------------------------------------------------------------------------
    function position(topic) {
      var p = topic in last ? last[topic] : 0;
      return p > floor ? p : floor;
    }

    // Where a transport with one cursor (SSE, polling) resumes: the lowest position of the
    // followed topics, so a switch loses nothing (what comes twice is dropped). 0: from now.
    function resume() {
      var keys = o.topics.length ? o.topics : Object.keys(last);
      var low = null;
      keys.forEach(function (k) { var p = position(k); if (low === null || p < low) low = p; });
      return low === null ? floor : low;
    }

    // Duplicate filter: an event is new if its id is above its topic's position. SSE and polling
    // carry one sequence in id order, so each of their ids makes every topic complete up to it.
    function deliver(t, id, topic, event, data) {
      var key = topic == null ? "*" : topic;
      var fresh = id > position(key);
      if (t.sequence && id > floor) floor = id;
      if (!fresh) return;
      last[key] = id;
      o.onEvent({ id: id, topic: topic, event: event, data: data, transport: t.name });
    }

    // A reset notice: events up to `cursor` are gone; continue from it (it may lower positions).
    function reset(t, topic, cursor) {
      if (topic == null) { last = {}; floor = cursor; }
      else { last[topic] = cursor; if (floor > cursor) floor = cursor; }
      o.onReset({ topic: topic, cursor: cursor, transport: t.name });
    }

    // A gap notice: the server dropped the events it names (this client was too slow); what
    // follows lies above them, so positions move past (only forward).
    function isGap(j) { return j && j.event === "gap" && j.data && Array.isArray(j.data.missed); }
    function gap(t, j) {
      j.data.missed.forEach(function (r) {
        var keys = r.topic === "*" ? Object.keys(last) : [r.topic];
        keys.forEach(function (k) { if (position(k) < r.last) last[k] = r.last; });
      });
      if (t.sequence && j.id > floor) floor = j.id;
      o.onGap({ id: j.id, reason: j.data.reason, missed: j.data.missed, transport: t.name });
    }

    function parse(text) { try { return JSON.parse(text); } catch (e) { return text; } }

    function heartbeatOf(j) {
      return j && typeof j === "object" && !Array.isArray(j) && Object.keys(j).length === 1 &&
        typeof j.heartbeat === "number" ? j.heartbeat : 0;
    }

    // Proof of delivery ----------------------------------------------------------------------
    // Each transport runs against one deadline at a time: to open (connectTimeout), then to
    // show data (proofTimeout), then to show data again (the heartbeat period x stallFactor).
    function arm(t, ms, why) {
      clearTimeout(t.deadline);
      t.deadline = setTimeout(function () { fail(t, why); }, ms);
    }

    function opened(t) {
      if (!t.done) arm(t, o.proofTimeout, "no data");
    }

    // Data arrived (an event, a reply, a heartbeat carrying the server's period in ms).
    function alive(t, heartbeat) {
      if (t.done) return;
      if (heartbeat > 0) t.heartbeat = heartbeat;
      arm(t, t.heartbeat ? t.heartbeat * o.stallFactor : o.proofTimeout, "stalled");
      if (t.proved) return;
      t.proved = true;
      if (t === candidate) return promote(t);
      attempt = 0;
      remember(t.name);
      status("open");
      scheduleProbe();
    }

    function drop(t) {
      if (!t || t.done) return;
      t.done = true;
      clearTimeout(t.deadline);
      t.stop();
    }

    // A draining server's hand-off ({"error":"draining","retry_ms":N,"cursor":C}: a WebSocket
    // 1012 close reason, a 503 poll answer, a herald.drain SSE event), or null.
    function drainOf(j) {
      return j && typeof j === "object" && j.error === "draining" && typeof j.retry_ms === "number" ? j : null;
    }

    // Everything up to a drain's cursor was delivered on `t`: on WebSocket, of the topics the
    // server acknowledged (all of them, or the channel's own when none are named).
    function handedOver(t, d) {
      if (typeof d.cursor !== "number") return;
      var all = !t.acked || !o.topics.length || o.topics.every(function (k) { return t.acked[k]; });
      if (all) { if (d.cursor > floor) floor = d.cursor; return; }
      Object.keys(t.acked).forEach(function (k) { if (position(k) < d.cursor) last[k] = d.cursor; });
    }

    // A transport failed. One that never delivered, or went silent, gives way to the next at
    // once; one that worked and then closed is reconnected after a backoff; one a draining
    // server closed or refused (`handoff`) after the delay it was told, from its cursor.
    function fail(t, why, handoff) {
      if (t.done) return;
      drop(t);
      if (t === candidate) return probeFailed(t);
      if (closed || t !== current) return;
      current = null;
      cancelProbe();
      if (handoff) {
        handedOver(t, handoff);
        status("waiting", { transport: t.name, delay: handoff.retry_ms, reason: "draining" });
        timer = setTimeout(start, handoff.retry_ms);
        return;
      }
      var worked = t.proved && why === "closed";
      // The status names the transport given up and why.
      if (!worked && index + 1 < order.length) {
        index += 1;
        status("waiting", { transport: t.name, delay: 0, reason: why });
        return start();
      }
      if (!worked) index = 0;  // every transport failed: from the best one after a pause
      var ceiling = Math.min(o.maxDelay, o.minDelay * Math.pow(2, attempt));
      var delay = Math.random() * ceiling;  // full jitter
      attempt += 1;
      status("waiting", { transport: t.name, delay: delay, reason: why });
      timer = setTimeout(start, delay);
    }

    function make(name) {
      var t = { name: name, proved: false, stop: function () {} };
      if (name !== "polling") arm(t, o.connectTimeout, "connect timeout");
      var open = ({ websocket: ws, sse: sse, polling: poll })[name];
      withTicket(function (k) { if (!t.done) open(t, k); }, function () { fail(t, "no ticket"); });
      return t;
    }

    function start() {
      timer = null;
      if (closed) return;
      current = make(order[index]);
      status("connecting");
    }

    // Probing: after a fallback, try the better transports again, best first, next to the
    // working one; the first that delivers takes over (its duplicates are dropped).
    function scheduleProbe() {
      if (closed || o.transport !== "auto" || index === 0 || probeTimer || candidate) return;
      probeTimer = setTimeout(function () { probeTimer = null; probe(0); }, probeDelay);
    }

    function probe(rank) {
      if (closed || !current || rank >= index) return;
      candidate = make(order[rank]);
      candidate.rank = rank;
    }

    function promote(t) {
      candidate = null;
      drop(current);
      current = t;
      index = t.rank;
      probeDelay = o.probeAfter;
      attempt = 0;
      remember(t.name);
      status("open");
      scheduleProbe();
    }

    function probeFailed(t) {
      candidate = null;
      if (t.rank + 1 < index) return probe(t.rank + 1);
      probeDelay = Math.min(probeDelay * 2, o.probeMax);
      scheduleProbe();
    }

    function cancelProbe() {
      if (probeTimer) clearTimeout(probeTimer);
      probeTimer = null;
      var c = candidate;
      candidate = null;
      drop(c);
    }

    // Transports ------------------------------------------------------------------------------
    function ws(t, ticket) {
      var u = target(null, ticket);
      u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
      u.searchParams.delete("topic");  // subscribe by message, each topic with its own cursor
      if (!o.topics.length && resume() > 0) u.searchParams.set("since", String(resume()));
      u.searchParams.set("heartbeat", "1");  // frames a script can see: pings it cannot
      t.acked = {};  // topics the server acknowledged (a drain's cursor applies to them)
      var sock = new root.WebSocket(u.href);
      var pendingBinary = null;
      sock.binaryType = "arraybuffer";
      sock.onopen = function () {
        o.topics.forEach(function (topic) {
          var msg = { subscribe: topic };
          if (position(topic) > 0) msg.since = position(topic);
          sock.send(JSON.stringify(msg));
        });
        opened(t);
      };
      sock.onmessage = function (m) {
        if (typeof m.data !== "string") {  // the payload of a binary event announced just before
          alive(t);
          if (pendingBinary) deliver(t, pendingBinary.id, pendingBinary.topic, pendingBinary.event, m.data);
          pendingBinary = null;
          return;
        }
        var j = parse(m.data);
        var beat = heartbeatOf(j);
        alive(t, beat);
        if (beat) return;
        if (j && typeof j === "object" && !Array.isArray(j)) {
          if (typeof j.id === "number" && typeof j.topic === "string") {
            if (j.event === "reset" && j.data && typeof j.data.cursor === "number") return reset(t, j.topic, j.data.cursor);
            if (isGap(j)) return gap(t, j);
            if (j.binary) { pendingBinary = j; return; }
            return deliver(t, j.id, j.topic, j.event, j.data);
          }
          if (typeof j.subscribed === "string") { t.acked[j.subscribed] = true; return; }
          if ("unsubscribed" in j) return;
          if ("error" in j && Object.keys(j).every(function (k) { return k === "error" || k === "topic" || k === "message"; }))
            return o.onError(j);
        }
        o.onReply(m.data);
      };
      sock.onclose = function (e) { fail(t, "closed", e && e.code === 1012 ? drainOf(parse(e.reason)) : null); };
      // The close that follows an error says what happened; Node's `ws` throws an error nobody listens to.
      sock.onerror = function () {};
      t.stop = function () { sock.onopen = sock.onmessage = sock.onclose = null; try { sock.close(); } catch (e) { /* closed */ } };
      t.send = function (text) { sock.send(text); return Promise.resolve([]); };
      t.ready = function () { return sock.readyState === 1; };
      return t;
    }

    function sse(t, ticket) {
      // Envelopes: every event's data names its topic, as on WebSocket and polling. Heartbeat
      // events: comments never reach a script.
      var params = { envelope: "1", heartbeat: "1" };
      if (resume() > 0) params.lastEventId = String(resume());
      t.sequence = true;
      var es = new root.EventSource(target(params, ticket).href, { withCredentials: false });
      es.onmessage = function (m) {
        alive(t);
        var e = parse(m.data);
        if (!e || typeof e.id !== "number") return;
        if (e.event === "reset" && e.data && typeof e.data.cursor === "number") return reset(t, e.topic || null, e.data.cursor);
        if (isGap(e)) return gap(t, e);
        deliver(t, e.id, e.topic, e.event, e.data);
      };
      es.addEventListener("heartbeat", function (m) { alive(t, heartbeatOf(parse(m.data))); });
      // The server ended the stream for a reason (its authorization expired): reconnect through
      // a fresh ticket rather than let EventSource retry the used one.
      es.addEventListener("close", function () { fail(t, "closed"); });
      // A drain: the stream ends next, and EventSource comes back by itself after the `retry:`
      // it was given, from the event's id (its Last-Event-ID): the cursor.
      es.addEventListener("herald.drain", function (m) {
        var d = drainOf(parse(m.data));
        if (d) { handedOver(t, d); status("waiting", { delay: d.retry_ms, reason: "draining" }); }
      });
      // EventSource reconnects by itself (with Last-Event-ID) after a dropped stream, and each
      // reconnection must show data again; a refused request (readyState CLOSED) or a stream
      // that never delivered is ours to handle.
      es.onopen = function () { opened(t); };
      es.onerror = function () { if (es.readyState === 2 || !t.proved) fail(t, "closed"); };
      t.stop = function () { es.close(); };
      return t;
    }

    function poll(t, ticket) {
      t.sequence = true;
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var since = resume();
      var answered = false;
      function next() {
        if (t.done) return;
        // The first poll is short: its answer, at once, proves that polls get through.
        var params = {};
        if (answered) params.wait = String(o.pollWait);
        if (since > 0) params.since = String(since);
        arm(t, answered ? o.pollWait * 1000 + o.proofTimeout : o.connectTimeout, answered ? "stalled" : "connect timeout");
        var first = ticket;
        ticket = null;
        Promise.resolve(first || withTicket(function (k) { return k; }))
          .then(function (k) {
            return root.fetch(target(params, k).href, { cache: "no-store", signal: controller && controller.signal });
          })
          .then(function (r) {
            if (r.status === 503) return r.json().then(function (j) { t.handoff = drainOf(j); throw new Error("HTTP 503"); });
            if (!r.ok) throw new Error("HTTP " + r.status);
            return r.json();
          })
          .then(function (answer) {
            if (t.done) return;
            answered = true;
            alive(t);
            var events = answer.events || [];
            // What history still has follows, maybe below every position: continue below it.
            if (answer.reset) reset(t, null, events.length ? events[0].id - 1 : answer.cursor);
            events.forEach(function (e) { if (isGap(e)) gap(t, e); else deliver(t, e.id, e.topic, e.event, e.data); });
            since = answer.cursor;
            if (since > floor) floor = since;  // the answer holds everything up to its cursor
            next();
          })
          .catch(function () { fail(t, "closed", t.handoff); });
      }
      t.stop = function () { if (controller) controller.abort(); };
      next();
      return t;
    }

    // Messages: a WebSocket frame when the socket is up, else a POST to the same path whose
    // response holds the replies (a JSON array; a binary reply is {"binary": base64}).
    function send(text) {
      if (current && current.send && current.ready()) return current.send(text);
      return Promise.resolve(withTicket(function (k) { return k; })).then(function (k) {
        var u = new URL(base.href);
        if (k) u.searchParams.set("ticket", k);
        return root.fetch(u.href, {
          method: "POST", body: text, headers: { "Content-Type": "text/plain;charset=UTF-8" },
        });
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
      cancelProbe();
      drop(current);
      current = null;
      status("closed");
    }

    // Which transports to try: forced, else what the server offers (GET path?negotiate), from
    // the one this tab last found working; the answer's cursor is where "now" is.
    function begin(answer) {
      if (closed) return;
      var offered = answer && answer.transports;
      if (o.transport !== "auto") order = [o.transport];
      else order = ALL.filter(function (n) { return !offered || offered.indexOf(n) >= 0; });
      if (typeof root.WebSocket !== "function") order = order.filter(function (n) { return n !== "websocket"; });
      if (typeof root.EventSource !== "function") order = order.filter(function (n) { return n !== "sse"; });
      if (order.length === 0) order = ["polling"];
      if (answer && typeof answer.cursor === "number" && floor === 0) floor = answer.cursor;
      var kept = order.indexOf(remembered());
      index = kept > 0 ? kept : 0;
      start();
    }
    var probeUrl = new URL(base.href);
    probeUrl.searchParams.set("negotiate", "");
    Promise.resolve(withTicket(function (k) { return k; }))
      .then(function (k) {
        if (k) probeUrl.searchParams.set("ticket", k);
        return root.fetch(probeUrl.href, { cache: "no-store" });
      })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { begin(j); }, function () { begin(null); });

    return {
      send: send,
      close: close,
      get transport() { return current && current.proved ? current.name : null; },
      get lastId() { return Math.max.apply(null, [floor].concat(Object.keys(last).map(function (k) { return last[k]; }))); },
    };
  }

  root.herald = { connect: connect };
})(typeof window !== "undefined" ? window : globalThis);
