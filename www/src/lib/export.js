// Exports made in the browser: CSV (RFC 4180, safe to open in a
// spreadsheet) and JSON of the sections a page shows, and the download of
// a text as a file.

// A text cell starting with one of these is a formula to a spreadsheet.
const FORMULA = /^[=+\-@\t\r]/;

/**
 * One CSV field: empty for null, numbers as they are, text quoted when it
 * holds a comma, quote or line break (quotes doubled), and a text that a
 * spreadsheet would run as a formula prefixed with ' (numbers are data,
 * so -5 stays -5).
 */
export function csvField(v) {
  if (v == null) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  let s = String(v);
  if (FORMULA.test(s)) s = "'" + s;
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/** Rows (arrays) as CSV lines, CRLF after each. */
export function csvLines(rows) {
  return rows.map((r) => r.map(csvField).join(',') + '\r\n').join('');
}

/**
 * A CSV file of sections: first the export's description as key,value
 * lines, then each section after a blank line: a line with its title, its
 * header, its rows.
 */
export function sectionsCsv(meta, sections) {
  const head = [['tokentap export', meta.view]];
  for (const [k, v] of Object.entries(meta)) {
    if (k === 'view') continue;
    if (v && typeof v === 'object') {
      for (const [fk, fv] of Object.entries(v)) head.push([k + '.' + fk, fv]);
    } else head.push([k, v]);
  }
  let out = csvLines(head);
  for (const s of sections) out += '\r\n' + csvLines([[s.title], s.columns, ...s.rows]);
  return out;
}

/** The same as JSON: the description, then each section's rows as objects. */
export function sectionsJson(meta, sections, missing = []) {
  return JSON.stringify({
    tokentap_export: 1,
    ...meta,
    sections: sections.map((s) => ({
      id: s.id,
      title: s.title,
      columns: s.columns,
      rows: s.rows.map((r) => Object.fromEntries(s.columns.map((c, i) => [c, r[i] ?? null]))),
    })),
    missing,
  }, null, 2) + '\n';
}

/** tokentap-usage-24h-2026-11-22.csv (the local date of `now`). */
export function exportFilename(view, range, ext, now = new Date()) {
  const d = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
  const clean = (s) => String(s).toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  return ['tokentap', clean(view), clean(range), d].filter(Boolean).join('-') + '.' + ext;
}

/** Save a text as a file: a Blob behind a temporary <a download>. */
export function download(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // Give the browser the time to start the download before letting go.
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
