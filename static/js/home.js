// Markets list: live tickers over /ws/stream.
(function () {
  "use strict";
  const rows = [...document.querySelectorAll("tr[data-symbol]")];
  if (!rows.length) return;
  const stream = new ExchangeStream("/ws/stream");
  for (const row of rows) {
    const symbol = row.dataset.symbol;
    stream.on(`ticker:${symbol}`, (m) => {
      const t = m.data;
      const set = (field, text) => {
        const cell = row.querySelector(`[data-field="${field}"]`);
        if (cell) cell.textContent = text;
        return cell;
      };
      set("last", t.last || "–");
      set("high_24h", t.high_24h || "–");
      set("low_24h", t.low_24h || "–");
      const volume = row.querySelector('[data-field="volume_24h"]');
      volume.textContent = volume.textContent.replace(/^\S+/, t.volume_24h);
      const pct = t.change_pct_24h ? Dec.toFixed(Dec.parse(t.change_pct_24h), 2) : null;
      const change = set("change_pct_24h", pct ? `${pct}%` : "–");
      change.classList.toggle("up", !!t.change_pct_24h && !t.change_pct_24h.startsWith("-"));
      change.classList.toggle("down", !!t.change_pct_24h && t.change_pct_24h.startsWith("-"));
    });
  }
  stream.subscribe(rows.map((r) => `ticker:${r.dataset.symbol}`));
})();
