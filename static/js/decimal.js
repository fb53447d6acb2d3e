// Exact decimal arithmetic on the API's decimal strings, for estimates and sorting.
// Amounts never go through floats here (only the chart, which just draws them, uses Number).
(function (global) {
  "use strict";

  function parse(text) {
    if (text === null || text === undefined) return null;
    text = String(text).trim();
    const match = /^(-)?(\d*)(?:\.(\d*))?$/.exec(text);
    if (!match || (match[2] === "" && !match[3])) return null;
    const frac = match[3] || "";
    const n = BigInt((match[2] || "0") + frac);
    return { n: match[1] ? -n : n, s: frac.length };
  }

  function pow10(k) {
    return 10n ** BigInt(k);
  }

  function align(a, b) {
    const s = Math.max(a.s, b.s);
    return [a.n * pow10(s - a.s), b.n * pow10(s - b.s), s];
  }

  function add(a, b) {
    const [x, y, s] = align(a, b);
    return { n: x + y, s };
  }

  function sub(a, b) {
    const [x, y, s] = align(a, b);
    return { n: x - y, s };
  }

  function mul(a, b) {
    return { n: a.n * b.n, s: a.s + b.s };
  }

  function cmp(a, b) {
    const [x, y] = align(a, b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  // a / b with `places` decimals, rounded half up (b must not be zero).
  function div(a, b, places) {
    const [x, y] = align(a, b);
    const scaled = x * pow10(places + 1);
    let q = scaled / y;
    q = q >= 0n ? (q + 5n) / 10n : (q - 5n) / 10n;
    return { n: q, s: places };
  }

  // Round to `places` decimals: mode "half" (default), "up" (away from zero) or "down" (toward zero).
  function round(a, places, mode) {
    if (a.s <= places) return { n: a.n * pow10(places - a.s), s: places };
    const f = pow10(a.s - places);
    const neg = a.n < 0n;
    const abs = neg ? -a.n : a.n;
    let q = abs / f;
    const r = abs % f;
    if (mode === "up" ? r > 0n : mode === "down" ? false : r * 2n >= f) q += 1n;
    return { n: neg ? -q : q, s: places };
  }

  function toFixed(a, places, mode) {
    const v = round(a, places, mode);
    const neg = v.n < 0n;
    let digits = (neg ? -v.n : v.n).toString().padStart(places + 1, "0");
    if (places > 0) digits = digits.slice(0, -places) + "." + digits.slice(-places);
    return (neg ? "-" : "") + digits;
  }

  function str(a) {
    let text = toFixed(a, a.s);
    if (text.includes(".")) text = text.replace(/0+$/, "").replace(/\.$/, "");
    return text === "-0" ? "0" : text;
  }

  function isZero(a) {
    return a.n === 0n;
  }

  function isMultiple(a, step) {
    const [x, y] = align(a, step);
    return y !== 0n && x % y === 0n;
  }

  // Decimal places of a step such as "0.01" (2) or "1" (0).
  function places(step) {
    const d = parse(step);
    return d ? str(d).split(".")[1]?.length || 0 : 0;
  }

  global.Dec = { parse, add, sub, mul, div, cmp, round, toFixed, str, isZero, isMultiple, places };
})(window);
