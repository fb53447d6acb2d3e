// The /ws/stream client: reconnects with back-off, re-subscribes, and keeps level-2 books in step
// (a snapshot, then changes whose sequence is exactly one higher; a gap asks for a fresh snapshot).
(function (global) {
  "use strict";

  class Stream {
    constructor(path) {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      this.url = scheme + location.host + path;
      this.channels = new Set();
      this.handlers = new Map();
      this.typeHandlers = new Map();
      this.statusHandlers = [];
      this.backoff = 500;
      this.ws = null;
      this.connect();
    }

    on(channel, handler) {
      this.handlers.set(channel, handler);
    }

    onType(type, handler) {
      this.typeHandlers.set(type, handler);
    }

    onStatus(handler) {
      this.statusHandlers.push(handler);
    }

    subscribe(channels) {
      channels.forEach((c) => this.channels.add(c));
      this.send({ op: "subscribe", channels });
    }

    unsubscribe(channels) {
      channels.forEach((c) => this.channels.delete(c));
      this.send({ op: "unsubscribe", channels });
    }

    send(message) {
      // While disconnected nothing is lost: on (re)connection every channel is subscribed again.
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    status(state) {
      this.statusHandlers.forEach((h) => h(state));
    }

    connect() {
      this.status("connecting");
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => {
        this.backoff = 500;
        this.status("open");
        if (this.channels.size) this.send({ op: "subscribe", channels: [...this.channels] });
      };
      ws.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        const handler = message.channel && this.handlers.get(message.channel);
        if (handler) handler(message);
        const typeHandler = this.typeHandlers.get(message.type);
        if (typeHandler) typeHandler(message);
      };
      ws.onclose = () => {
        this.status("closed");
        setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 10000);
      };
    }
  }

  // One market's order book from "depth:SYMBOL".
  class DepthBook {
    constructor(stream, symbol, onChange) {
      this.stream = stream;
      this.channel = "depth:" + symbol;
      this.onChange = onChange;
      this.bids = new Map();
      this.asks = new Map();
      this.sequence = null;
      stream.on(this.channel, (m) => this.handle(m));
    }

    handle(message) {
      if (message.type === "snapshot") {
        this.bids = new Map(message.bids);
        this.asks = new Map(message.asks);
        this.sequence = message.sequence;
      } else {
        if (this.sequence === null) return; // waiting for the snapshot we asked for
        if (message.sequence !== this.sequence + 1) {
          this.sequence = null;
          this.stream.subscribe([this.channel]);
          return;
        }
        for (const [side, levels] of [
          [this.bids, message.bids],
          [this.asks, message.asks],
        ]) {
          for (const [price, qty] of levels) {
            if (Dec.isZero(Dec.parse(qty))) side.delete(price);
            else side.set(price, qty);
          }
        }
        this.sequence = message.sequence;
      }
      this.onChange(this);
    }

    // [[price, qty], ...] best first.
    levels(side, limit) {
      const map = side === "bids" ? this.bids : this.asks;
      const rows = [...map.entries()].map(([p, q]) => [p, q, Dec.parse(p)]);
      rows.sort((a, b) => (side === "bids" ? Dec.cmp(b[2], a[2]) : Dec.cmp(a[2], b[2])));
      return rows.slice(0, limit || rows.length).map(([p, q]) => [p, q]);
    }
  }

  global.ExchangeStream = Stream;
  global.DepthBook = DepthBook;
})(window);
