// The trading page: live book, chart, trades and ticker over /ws/stream; the order form, the
// user's orders, fills and balances through /api/v1 (session + CSRF) and the private channels.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("page-config").textContent);
  const SYMBOL = cfg.symbol;
  const PRICE_DP = Dec.places(cfg.tick_size);
  const QTY_DP = Dec.places(cfg.lot_size);
  const BOOK_LEVELS = 12;
  const OPEN = new Set(["pending", "open", "partially_filled"]);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const form = document.querySelector('[data-testid="order-form"]'); // absent when signed out
  let balances = new Map();

  const byTestId = (id, root) => (root || document).querySelector(`[data-testid="${id}"]`);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "testid") node.dataset.testid = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
    return node;
  };
  const fixed = (value, places) => {
    const d = Dec.parse(value);
    return d ? Dec.toFixed(d, places) : "–";
  };
  const price = (value) => fixed(value, PRICE_DP);
  const qty = (value) => fixed(value, QTY_DP);
  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
  const stamp = (iso) => {
    const d = new Date(iso);
    return d.toLocaleDateString([], { month: "2-digit", day: "2-digit" }) + " " + clock(iso);
  };

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken;
    let response;
    try {
      response = await fetch("/api/v1" + path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, data: { error: { code: "network", message: "The server did not answer.", fields: {} } } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }
  const list = (data) => (Array.isArray(data) ? data : (data && data.results) || []);

  const stream = new ExchangeStream("/ws/stream");
  stream.onStatus((state) => {
    byTestId("ws-status").dataset.state = state;
  });
  stream.onType("error", (m) => console.warn("stream:", m.code, m.message, m.channel));

  // --- Order book ----------------------------------------------------------------------------

  let bookFrame = null;
  const book = new DepthBook(stream, SYMBOL, () => {
    if (!bookFrame) bookFrame = requestAnimationFrame(renderBook);
    updateEstimate();
  });

  function renderBook() {
    bookFrame = null;
    const asks = book.levels("asks", BOOK_LEVELS);
    const bids = book.levels("bids", BOOK_LEVELS);
    const cumulative = (levels) => {
      let total = Dec.parse("0");
      return levels.map(([p, q]) => {
        total = Dec.add(total, Dec.parse(q));
        return [p, q, total];
      });
    };
    const askRows = cumulative(asks);
    const bidRows = cumulative(bids);
    const max = [...askRows, ...bidRows].reduce((m, r) => Math.max(m, Number(Dec.str(r[2]))), 0) || 1;
    const row = (side, [p, q, total]) => {
      const width = Math.round((Number(Dec.str(total)) / max) * 100);
      const tr = el(
        "tr",
        { class: side, testid: "book-level", "data-side": side, "data-price": p, title: "Use this price" },
        el("td", { class: "num price" }, price(p)),
        el("td", { class: "num" }, qty(q)),
        el("td", { class: "num hide-xs" }, qty(Dec.str(total))),
      );
      tr.style.setProperty("--depth", width + "%");
      tr.addEventListener("click", () => setPrice(p));
      return tr;
    };
    byTestId("book-asks").replaceChildren(...askRows.reverse().map((r) => row("ask", r)));
    byTestId("book-bids").replaceChildren(...bidRows.map((r) => row("bid", r)));
    const spread = byTestId("book-spread");
    if (asks.length && bids.length) {
      spread.textContent = "Spread " + price(Dec.str(Dec.sub(Dec.parse(asks[0][0]), Dec.parse(bids[0][0]))));
    } else {
      spread.textContent = asks.length || bids.length ? "One-sided book" : "Empty book";
    }
    byTestId("book-sequence").textContent = book.sequence === null ? "" : "#" + book.sequence;
  }

  // --- Ticker --------------------------------------------------------------------------------

  stream.on(`ticker:${SYMBOL}`, (m) => {
    const t = m.data;
    byTestId("ticker-last").textContent = t.last ? price(t.last) : "–";
    const change = byTestId("ticker-change");
    change.textContent = t.change_24h ? `${price(t.change_24h)} (${fixed(t.change_pct_24h, 2)}%)` : "–";
    change.className = "value " + (t.change_24h ? (t.change_24h.startsWith("-") ? "down" : "up") : "");
    byTestId("ticker-high").textContent = t.high_24h ? price(t.high_24h) : "–";
    byTestId("ticker-low").textContent = t.low_24h ? price(t.low_24h) : "–";
    byTestId("ticker-volume").textContent = qty(t.volume_24h || "0");
    if (t.last) document.title = `${price(t.last)} ${SYMBOL} · Exchange`;
  });

  // --- Trades tape ---------------------------------------------------------------------------

  const trades = new Map();
  function addTrades(rows) {
    for (const t of rows) trades.set(t.id, t);
    const newest = [...trades.values()].sort((a, b) => b.id - a.id).slice(0, 60);
    trades.clear();
    newest.forEach((t) => trades.set(t.id, t));
    byTestId("trades").replaceChildren(
      ...newest.map((t) =>
        el(
          "tr",
          { testid: `trade-${t.id}`, class: t.taker_side === "buy" ? "up" : "down" },
          el("td", { class: "num" }, price(t.price)),
          el("td", { class: "num" }, qty(t.quantity)),
          el("td", { class: "num muted" }, clock(t.created_at)),
        ),
      ),
    );
  }
  stream.on(`trades:${SYMBOL}`, (m) => addTrades(m.data));

  // --- Candles -------------------------------------------------------------------------------

  const chartBox = byTestId("chart");
  let chart = null;
  let candleSeries = null;
  let volumeSeries = null;
  let interval = "1m";
  let candlesReady = false;
  let pendingCandles = [];
  let lastBarTime = 0;

  function makeChart() {
    if (chart || !window.LightweightCharts) return !!chart;
    const LC = window.LightweightCharts;
    chart = LC.createChart(chartBox, {
      autoSize: true,
      layout: { background: { color: "#161c24" }, textColor: "#8a96a3" },
      grid: { vertLines: { color: "#1f2833" }, horzLines: { color: "#1f2833" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#263040" },
      rightPriceScale: { borderColor: "#263040" },
      localization: { priceFormatter: (p) => p.toFixed(PRICE_DP) },
    });
    candleSeries = chart.addSeries(LC.CandlestickSeries, {
      upColor: "#1fbf75",
      downColor: "#f0506e",
      wickUpColor: "#1fbf75",
      wickDownColor: "#f0506e",
      borderVisible: false,
    });
    volumeSeries = chart.addSeries(LC.HistogramSeries, {
      priceScaleId: "",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    volumeSeries.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    return true;
  }

  function bar(c) {
    const time = Math.floor(Date.parse(c.open_time) / 1000);
    const up = Number(c.close) >= Number(c.open);
    return [
      { time, open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) },
      { time, value: Number(c.volume), color: up ? "rgba(31,191,117,.35)" : "rgba(240,80,110,.35)" },
    ];
  }

  function applyCandles(candles) {
    for (const c of candles) {
      const [candle, volume] = bar(c);
      if (candle.time < lastBarTime) continue;
      candleSeries.update(candle);
      volumeSeries.update(volume);
      lastBarTime = candle.time;
    }
  }

  function onCandles(m) {
    if (m.interval !== interval) return;
    chartBox.dataset.lastCandle = JSON.stringify(m.data[m.data.length - 1] || null);
    if (!candlesReady) pendingCandles.push(...m.data);
    else if (chart) applyCandles(m.data);
  }

  async function loadCandles(next) {
    const previous = interval;
    interval = next;
    candlesReady = false;
    pendingCandles = [];
    document.querySelectorAll("[data-interval]").forEach((b) => b.classList.toggle("active", b.dataset.interval === next));
    if (previous !== next) stream.unsubscribe([`candles:${SYMBOL}:${previous}`]);
    stream.on(`candles:${SYMBOL}:${next}`, onCandles);
    stream.subscribe([`candles:${SYMBOL}:${next}`]);
    const response = await api("GET", `/markets/${SYMBOL}/candles?interval=${next}&limit=500`);
    if (interval !== next) return;
    const rows = list(response.data).slice().reverse();
    chartBox.dataset.candles = String(rows.length);
    if (makeChart()) {
      const bars = rows.map(bar);
      candleSeries.setData(bars.map((b) => b[0]));
      volumeSeries.setData(bars.map((b) => b[1]));
      lastBarTime = bars.length ? bars[bars.length - 1][0].time : 0;
      candlesReady = true;
      applyCandles(pendingCandles);
      chart.timeScale().scrollToRealTime();
    } else {
      candlesReady = true;
      chartBox.replaceChildren(el("p", { class: "muted center" }, "Chart library missing: run `make` to install it."));
    }
    pendingCandles = [];
  }
  document.querySelectorAll("[data-interval]").forEach((b) => b.addEventListener("click", () => loadCandles(b.dataset.interval)));

  // --- Subscribe, then load what came before ------------------------------------------------

  stream.subscribe([`depth:${SYMBOL}`, `trades:${SYMBOL}`, `ticker:${SYMBOL}`]);
  api("GET", `/markets/${SYMBOL}/trades?limit=60`).then((r) => addTrades(list(r.data)));
  document.addEventListener("DOMContentLoaded", () => loadCandles("1m"));

  if (!cfg.signed_in) return;

  // --- The user's orders, fills, balances ---------------------------------------------------

  const orders = new Map();
  const fills = new Map();

  function upsertOrders(rows) {
    for (const o of rows) {
      if (o.symbol !== SYMBOL) continue;
      const known = orders.get(o.id);
      // Never let an older state (a late message, a slow response) overwrite a newer one.
      if (known && known.updated_at > o.updated_at) continue;
      if (known && known.updated_at === o.updated_at && !OPEN.has(known.status) && OPEN.has(o.status)) continue;
      orders.set(o.id, { ...known, ...o });
    }
    renderOrders();
  }

  async function cancelOrder(order, button) {
    button.disabled = true;
    button.textContent = "Canceling…";
    const r = await api("DELETE", `/orders/${order.id}`);
    if (r.ok) {
      orders.set(order.id, { ...r.data, canceling: OPEN.has(r.data.status) });
      renderOrders();
      refreshBalances();
    } else {
      button.disabled = false;
      button.textContent = "Cancel";
      showFormError((r.data && r.data.error && r.data.error.message) || "Could not cancel.");
    }
  }

  // Order history: a closed order expands to its lifecycle journal (GET /orders/{id}/events). A closed
  // order's journal no longer changes, so it is fetched once and kept.
  const expandedOrders = new Set();
  const orderEvents = new Map(); // order id -> events, or null while loading, or an error message

  function eventsToggle(o) {
    const open = expandedOrders.has(o.id);
    return el(
      "button",
      {
        type: "button",
        class: "small",
        testid: `history-${o.id}-toggle`,
        "aria-expanded": String(open),
        onclick: () => {
          if (open) expandedOrders.delete(o.id);
          else {
            expandedOrders.add(o.id);
            const known = orderEvents.get(o.id);
            if (known === undefined || typeof known === "string") loadOrderEvents(o.id);
          }
          renderOrders();
        },
      },
      open ? "Hide" : "Events",
    );
  }

  async function loadOrderEvents(orderId) {
    orderEvents.set(orderId, null);
    const r = await api("GET", `/orders/${orderId}/events`);
    // An error is kept as its message, shown in place; expanding the order again tries again.
    if (r.ok) orderEvents.set(orderId, list(r.data));
    else orderEvents.set(orderId, (r.data && r.data.error && r.data.error.message) || "Could not load the events.");
    renderOrders();
  }

  function eventsRow(o) {
    const events = orderEvents.get(o.id);
    let body;
    if (events === null || events === undefined) body = el("p", { class: "muted" }, "Loading…");
    else if (typeof events === "string") body = el("p", { class: "error" }, events);
    else
      body = el(
        "table",
        { class: "events" },
        el(
          "thead",
          {},
          el("tr", {}, ...["#", "Time", "Event", "Price", "Qty", "Filled", "Remaining", "Reason"].map((h) => el("th", {}, h))),
        ),
        el(
          "tbody",
          {},
          ...events.map((e) =>
            el(
              "tr",
              { testid: `event-${o.id}-${e.sequence}`, "data-type": e.type },
              el("td", { class: "muted" }, e.sequence),
              el("td", { class: "muted" }, stamp(e.at)),
              el("td", {}, e.type.replace("_", " ")),
              el("td", { class: "num" }, e.price ? price(e.price) : "–"),
              el("td", { class: "num" }, e.quantity ? qty(e.quantity) : "–"),
              el("td", { class: "num" }, qty(e.filled_quantity)),
              el("td", { class: "num" }, e.remaining_quantity ? qty(e.remaining_quantity) : "–"),
              el("td", { class: "muted" }, e.reason || ""),
            ),
          ),
        ),
      );
    return el("tr", { testid: `history-${o.id}-events`, class: "events-row" }, el("td", { colspan: "9" }, body));
  }

  function renderOrders() {
    const all = [...orders.values()].sort((a, b) => b.id - a.id);
    const open = all.filter((o) => OPEN.has(o.status));
    const closed = all.filter((o) => !OPEN.has(o.status)).slice(0, 100);
    const side = (o) => el("td", { class: o.side === "buy" ? "up" : "down" }, o.side);
    byTestId("open-orders").replaceChildren(
      ...open.map((o) => {
        const button = el("button", { type: "button", class: "small", testid: `cancel-${o.id}` }, o.canceling ? "Canceling…" : "Cancel");
        button.disabled = !!o.canceling;
        button.addEventListener("click", () => cancelOrder(o, button));
        return el(
          "tr",
          { testid: `order-${o.id}`, "data-status": o.status },
          el("td", { class: "muted" }, stamp(o.created_at)),
          side(o),
          el("td", {}, o.type),
          el("td", { class: "num" }, o.price ? price(o.price) : "market"),
          el("td", { class: "num" }, o.quantity ? qty(o.quantity) : "–"),
          el("td", { class: "num" }, qty(o.filled_quantity)),
          el("td", { testid: `order-${o.id}-status` }, o.status.replace("_", " ")),
          el("td", {}, button),
        );
      }),
    );
    byTestId("order-history").replaceChildren(
      ...closed.flatMap((o) => [
        el(
          "tr",
          { testid: `history-${o.id}`, "data-status": o.status },
          el("td", { class: "muted" }, stamp(o.created_at)),
          side(o),
          el("td", {}, o.type),
          el("td", { class: "num" }, o.price ? price(o.price) : "market"),
          el("td", { class: "num" }, o.quantity ? qty(o.quantity) : o.quote_quantity ? o.quote_quantity + " " + cfg.quote : "–"),
          el("td", { class: "num" }, qty(o.filled_quantity)),
          el("td", { class: "num" }, o.average_price ? price(o.average_price) : "–"),
          el("td", { testid: `history-${o.id}-status`, title: o.reject_reason || "" }, o.status.replace("_", " ")),
          el("td", {}, eventsToggle(o)),
        ),
        ...(expandedOrders.has(o.id) ? [eventsRow(o)] : []),
      ]),
    );
    byTestId("open-count").textContent = String(open.length);
    document.querySelector('[data-empty="open"]').hidden = open.length > 0;
    document.querySelector('[data-empty="history"]').hidden = closed.length > 0;
  }

  function addFills(rows) {
    for (const f of rows) if (f.symbol === SYMBOL) fills.set(f.id, f);
    const newest = [...fills.values()].sort((a, b) => b.id - a.id).slice(0, 100);
    byTestId("fills").replaceChildren(
      ...newest.map((f) =>
        el(
          "tr",
          { testid: `fill-${f.id}`, "data-order": f.order_id },
          el("td", { class: "muted" }, stamp(f.created_at)),
          el("td", { class: f.side === "buy" ? "up" : "down" }, f.side),
          el("td", { class: "num" }, price(f.price)),
          el("td", { class: "num" }, qty(f.quantity)),
          el("td", { class: "num" }, `${f.fee} ${f.fee_asset}`),
          el("td", {}, f.liquidity),
        ),
      ),
    );
    document.querySelector('[data-empty="fills"]').hidden = newest.length > 0;
  }

  // "Hide zero balances" is remembered per browser; this market's two assets always show.
  const HIDE_ZERO_KEY = "balances.hideZero";
  const hideZeroBox = byTestId("hide-zero-balances");
  const isZero = (b) =>
    [b.available, b.locked].every((value) => {
      const d = Dec.parse(value);
      return !d || d.n === 0n;
    });
  if (hideZeroBox) {
    hideZeroBox.checked = localStorage.getItem(HIDE_ZERO_KEY) === "1";
    hideZeroBox.addEventListener("change", () => {
      localStorage.setItem(HIDE_ZERO_KEY, hideZeroBox.checked ? "1" : "0");
      setBalances([...balances.values()]);
    });
  }

  function setBalances(rows) {
    balances = new Map(rows.map((b) => [b.asset, b]));
    const mine = (b) => (b.asset === cfg.base || b.asset === cfg.quote ? 0 : 1);
    const shown = hideZeroBox && hideZeroBox.checked ? rows.filter((b) => !mine(b) || !isZero(b)) : rows;
    const sorted = shown.slice().sort((a, b) => mine(a) - mine(b) || a.asset.localeCompare(b.asset));
    byTestId("balances").replaceChildren(
      ...sorted.map((b) =>
        el(
          "tr",
          { testid: `balance-${b.asset}`, class: mine(b) ? "muted" : "" },
          el("td", {}, b.asset),
          el("td", { class: "num", testid: `balance-${b.asset}-available` }, b.available),
          el("td", { class: "num", testid: `balance-${b.asset}-locked` }, b.locked),
        ),
      ),
    );
    updateEstimate();
  }

  async function refreshBalances() {
    const r = await api("GET", "/balances");
    if (r.ok) setBalances(list(r.data));
  }

  stream.on("orders", (m) => upsertOrders(m.data));
  stream.on("fills", (m) => addFills(m.data));
  stream.on("balances", (m) => setBalances(m.data));
  stream.onType("subscribed", function loadPrivate(m) {
    // Once the private channels are live, load what happened before; later pushes win by id/updated_at.
    if (!m.channels.includes("orders") || loadPrivate.done) return;
    loadPrivate.done = true;
    api("GET", `/orders?symbol=${SYMBOL}&status=open&limit=200`).then((r) => upsertOrders(list(r.data)));
    api("GET", `/orders?symbol=${SYMBOL}&status=closed&limit=100`).then((r) => upsertOrders(list(r.data)));
    api("GET", `/fills?symbol=${SYMBOL}&limit=100`).then((r) => addFills(list(r.data)));
    refreshBalances();
  });
  stream.subscribe(["orders", "fills", "balances"]);

  // Tabs
  document.querySelectorAll("[data-tab]").forEach((tab) =>
    tab.addEventListener("click", () => {
      document.querySelectorAll("[data-tab]").forEach((t) => t.classList.toggle("active", t === tab));
      document.querySelectorAll("[data-pane]").forEach((p) => (p.hidden = p.dataset.pane !== tab.dataset.tab));
    }),
  );

  // --- Order form ----------------------------------------------------------------------------

  const input = (name) => form.elements[name];
  let side = "buy";

  function setPrice(p) {
    if (!form || input("type").value !== "limit") return;
    input("price").value = p;
    updateEstimate();
  }

  function syncForm() {
    const type = input("type").value;
    form.querySelectorAll("[data-when]").forEach((node) => {
      const when = node.dataset.when;
      node.hidden = when === "limit" ? type !== "limit" : when === "market-buy" ? !(type === "market" && side === "buy") : false;
    });
    input("time_in_force").disabled = type === "market";
    if (type === "market") input("time_in_force").value = "IOC";
    form.querySelectorAll("[data-side]").forEach((b) => b.classList.toggle("active", b.dataset.side === side));
    const submit = byTestId("submit-order");
    submit.textContent = `${side === "buy" ? "Buy" : "Sell"} ${cfg.base}`;
    submit.classList.toggle("buy", side === "buy");
    submit.classList.toggle("sell", side === "sell");
    updateEstimate();
  }

  // Walk the book for a market order: [filled base, spent/received quote, enough liquidity?]
  function walk(levels, base, quoteBudget) {
    let filled = Dec.parse("0");
    let notional = Dec.parse("0");
    for (const [p, q] of levels) {
      const P = Dec.parse(p);
      let take = Dec.parse(q);
      if (base) {
        const left = Dec.sub(base, filled);
        if (Dec.cmp(take, left) > 0) take = left;
      } else {
        const left = Dec.sub(quoteBudget, notional);
        const affordable = Dec.round(Dec.div(left, P, QTY_DP + 2), QTY_DP, "down");
        if (Dec.cmp(take, affordable) > 0) take = affordable;
      }
      if (Dec.isZero(take) || take.n < 0n) break;
      filled = Dec.add(filled, take);
      notional = Dec.add(notional, Dec.mul(P, take));
      if (base && Dec.cmp(filled, base) >= 0) break;
    }
    const enough = base ? Dec.cmp(filled, base) >= 0 : true;
    return [filled, notional, enough];
  }

  function updateEstimate() {
    if (!form) return;
    const type = input("type").value;
    const P = Dec.parse(input("price").value);
    const Q = Dec.parse(input("quantity").value);
    const QQ = Dec.parse(input("quote_quantity").value);
    const postOnly = input("post_only").checked && type === "limit";
    const rate = Dec.parse(postOnly ? cfg.maker_fee : cfg.taker_fee);
    const ratePct = Dec.str(Dec.mul(rate, Dec.parse("100"))) + "%";
    const feeNote = postOnly ? `maker ${ratePct}` : `up to taker ${ratePct}`;
    const cost = byTestId("estimate-cost");
    const fee = byTestId("estimate-fee");
    const available = balances.get(side === "buy" ? cfg.quote : cfg.base);
    byTestId("estimate-available").textContent = available ? `${available.available} ${side === "buy" ? cfg.quote : cfg.base}` : "–";
    let base = null;
    let notional = null;
    let note = "";
    if (type === "limit") {
      if (P && Q) {
        base = Q;
        notional = Dec.mul(P, Q);
      }
    } else if (side === "buy" && QQ && !Q) {
      const [filled] = walk(book.levels("asks"), null, QQ);
      base = filled;
      notional = QQ;
      note = ` for ≈ ${qty(Dec.str(filled))} ${cfg.base}`;
    } else if (Q) {
      const [, total, enough] = walk(book.levels(side === "buy" ? "asks" : "bids"), Q, null);
      base = Q;
      notional = total;
      if (!enough) note = " (not enough liquidity: the rest expires)";
    }
    if (!base || !notional) {
      cost.textContent = "–";
      fee.textContent = "–";
      return;
    }
    const quoteDp = Math.max(PRICE_DP + QTY_DP, 2);
    const label = side === "buy" ? "" : "you receive ";
    cost.textContent = `${label}${Dec.str(Dec.round(notional, quoteDp, "up"))} ${cfg.quote}${note}`;
    // Fees are charged in the asset received: base for a buy, quote for a sell.
    const feeAmount = side === "buy" ? Dec.mul(base, rate) : Dec.mul(notional, rate);
    fee.textContent = `${Dec.str(Dec.round(feeAmount, 8, "up"))} ${side === "buy" ? cfg.base : cfg.quote} (${feeNote})`;
  }

  function clearErrors() {
    form.querySelectorAll("[data-field]").forEach((p) => (p.textContent = ""));
    form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
    byTestId("form-error").textContent = "";
    byTestId("form-ok").textContent = "";
  }

  function showFormError(message) {
    byTestId("form-error").textContent = message;
  }

  function showApiError(error) {
    let inline = false;
    for (const [field, messages] of Object.entries(error.fields || {})) {
      const slot = form.querySelector(`[data-field="${field}"]`);
      if (slot && !slot.previousElementSibling?.hidden) {
        slot.textContent = messages.join(" ");
        if (input(field)) input(field).setAttribute("aria-invalid", "true");
        inline = true;
      }
    }
    if (!inline) showFormError(error.message || "The order was refused.");
  }

  form.querySelectorAll("[data-side]").forEach((b) =>
    b.addEventListener("click", () => {
      side = b.dataset.side;
      syncForm();
    }),
  );
  form.addEventListener("input", updateEstimate);
  input("type").addEventListener("change", syncForm);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const type = input("type").value;
    const body = { symbol: SYMBOL, side, type, time_in_force: input("time_in_force").value, post_only: false };
    const value = (name) => input(name).value.trim() || null;
    if (type === "limit") {
      body.price = value("price");
      body.quantity = value("quantity");
      body.post_only = input("post_only").checked;
    } else if (side === "buy" && value("quote_quantity") && !value("quantity")) {
      body.quote_quantity = value("quote_quantity");
    } else {
      body.quantity = value("quantity");
    }
    const submit = byTestId("submit-order");
    submit.disabled = true;
    const r = await api("POST", "/orders", body);
    submit.disabled = false;
    if (r.ok) {
      byTestId("form-ok").textContent = `Order #${r.data.id} ${r.status === 201 ? "placed" : "already placed"}.`;
      upsertOrders([r.data]);
      refreshBalances();
    } else {
      showApiError((r.data && r.data.error) || { message: `Refused (HTTP ${r.status}).`, fields: {} });
    }
  });

  syncForm();
})();
