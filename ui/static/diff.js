// A line diff for comparing two versions of a value.

// canonical prints a JSON value with sorted object keys, two spaces a level,
// so two versions line up field by field whatever order they were written in.
export function canonical(v) {
  const sort = (x) => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === 'object' && !JSON.isRawJSON(x)) return Object.fromEntries(Object.keys(x).sort().map((k) => [k, sort(x[k])]));
    return x;
  };
  return JSON.stringify(sort(v), null, 2);
}

// diffLines returns the lines of a and b as [{op, text}], op being ' ' (in
// both), '-' (only in a) or '+' (only in b), from a longest common subsequence.
// Past max lines a side the middle is compared as a whole block.
export function diffLines(a, b, max = 3000) {
  const x = a.split('\n');
  const y = b.split('\n');
  // Common head and tail cost nothing and shrink the table.
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  const out = x.slice(0, head).map((text) => ({ op: ' ', text }));
  if (xs.length > max || ys.length > max) {
    out.push(...xs.map((text) => ({ op: '-', text })), ...ys.map((text) => ({ op: '+', text })));
  } else {
    const n = xs.length;
    const m = ys.length;
    // lcs[i][j]: length of the LCS of xs[i:] and ys[j:], rows of m+1.
    const lcs = new Uint32Array((n + 1) * (m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i * (m + 1) + j] = xs[i] === ys[j] ? lcs[(i + 1) * (m + 1) + j + 1] + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j], lcs[i * (m + 1) + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (xs[i] === ys[j]) { out.push({ op: ' ', text: xs[i] }); i++; j++; }
      else if (lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1]) out.push({ op: '-', text: xs[i++] });
      else out.push({ op: '+', text: ys[j++] });
    }
    while (i < n) out.push({ op: '-', text: xs[i++] });
    while (j < m) out.push({ op: '+', text: ys[j++] });
  }
  out.push(...x.slice(x.length - tail).map((text) => ({ op: ' ', text })));
  return out;
}
