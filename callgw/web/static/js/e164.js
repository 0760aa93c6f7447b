// E.164 numbers as the caller types them: what is kept (a "+", then at most 15 digits, the
// first not 0), how it is shown (the country code, then groups), and where the caret goes.
// Pure functions; the dial pad and the contact dialog use them, the browser tests check them.

// ITU-T E.164 country codes of one and two digits; every other code has three.
const ONE = new Set(["1", "7"]);
const TWO = new Set(("20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 " +
  "57 58 60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98").split(" "));

export const E164 = /^\+[1-9][0-9]{1,14}$/;

/** The digits of ``text`` as an E.164 candidate: "+" and at most 15 digits ("00" becomes "+";
 * a number typed without "+" gets one; a leading 0 after "+" is dropped). */
export function normalize(text) {
  let t = String(text).replace(/[^0-9+]/g, "");
  if (t.startsWith("00")) t = "+" + t.slice(2);
  const digits = t.replace(/\+/g, "").replace(/^0+/, "").slice(0, 15);
  return digits || t.startsWith("+") ? "+" + digits : "";
}

/** The country code of a normalized number ("+4930..." -> "49"), "" while too short. */
export function countryCode(number) {
  const d = number.replace(/^\+/, "");
  if (ONE.has(d.slice(0, 1))) return d.slice(0, 1);
  if (d.length >= 2 && TWO.has(d.slice(0, 2))) return d.slice(0, 2);
  return d.length >= 3 ? d.slice(0, 3) : "";
}

/** ``number`` (normalized) as shown: "+49 301 234 56", NANP "+1 415 555 0100". */
export function format(number) {
  if (!number) return "";
  const d = number.replace(/^\+/, "");
  const cc = countryCode(number);
  if (!cc) return "+" + d;
  const rest = d.slice(cc.length);
  const groups = [];
  if (cc === "1") {
    for (const [a, b] of [[0, 3], [3, 6], [6, 15]]) if (rest.length > a) groups.push(rest.slice(a, b));
  } else {
    let i = 0;
    while (rest.length - i > 4) { groups.push(rest.slice(i, i + 3)); i += 3; }
    if (i < rest.length) groups.push(rest.slice(i));
  }
  return ["+" + cc, ...groups].join(" ");
}

/** Reformat a text field in place, keeping the caret after the same digit. */
export function reformat(input) {
  const caret = input.selectionStart ?? input.value.length;
  const before = normalize(input.value.slice(0, caret)).replace(/^\+/, "").length;
  const shown = format(normalize(input.value));
  if (shown === input.value) return;
  input.value = shown;
  let pos = shown.length;
  if (before === 0) pos = shown.startsWith("+") ? 1 : 0;
  else {
    for (let i = 0, seen = 0; i < shown.length; i++) {
      if (/[0-9]/.test(shown[i]) && ++seen === before) { pos = i + 1; break; }
    }
  }
  if (document.activeElement === input) input.setSelectionRange(pos, pos);
}

/** True when ``text`` holds a complete E.164 number. */
export function valid(text) {
  return E164.test(normalize(text));
}
