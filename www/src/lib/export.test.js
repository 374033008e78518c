// CSV and JSON exports: RFC 4180 escaping, formula neutralizing, sections, file names, the download.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { csvField, csvLines, download, exportFilename, sectionsCsv, sectionsJson } from './export.js';

describe('CSV fields (RFC 4180, safe in a spreadsheet)', () => {
  it('leaves plain values alone', () => {
    expect(csvField('gpt-4o')).toBe('gpt-4o');
    expect(csvField(12)).toBe('12');
    expect(csvField(0.000487322886)).toBe('0.000487322886');
    expect(csvField(true)).toBe('true');
    expect(csvField('')).toBe('');
  });
  it('writes null, undefined and non-finite numbers as empty fields', () => {
    expect(csvField(null)).toBe('');
    expect(csvField(undefined)).toBe('');
    expect(csvField(NaN)).toBe('');
    expect(csvField(Infinity)).toBe('');
  });
  it('quotes commas, quotes and line breaks, doubling quotes', () => {
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('"')).toBe('""""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\rlf')).toBe('"cr\rlf"');
    expect(csvField('a\r\nb')).toBe('"a\r\nb"');
  });
  it('neutralizes text a spreadsheet would run as a formula', () => {
    expect(csvField('=1+1')).toBe("'=1+1");
    expect(csvField('+33 1 23')).toBe("'+33 1 23");
    expect(csvField('-cmd')).toBe("'-cmd");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('\t=x')).toBe("'\t=x");
    // Both at once: neutralized, then quoted.
    expect(csvField('=HYPERLINK("http://x","y")')).toBe('"\'=HYPERLINK(""http://x"",""y"")"');
    expect(csvField('=a,b')).toBe('"\'=a,b"');
    // Not at the start, or a number: data.
    expect(csvField('a=b')).toBe('a=b');
    expect(csvField(-5)).toBe('-5');
  });
  it('ends every line with CRLF', () => {
    expect(csvLines([['a', 1], ['b,c', null]])).toBe('a,1\r\n"b,c",\r\n');
    expect(csvLines([])).toBe('');
  });
});

const meta = { view: 'usage', range: '24h', from: '2026-11-21T10:00:00.000Z', to: '2026-11-22T10:00:00.000Z',
  bucket: 'auto', filters: { model: 'gpt-4o' }, generated_at: '2026-11-22T10:00:01.000Z' };
const sections = [
  { id: 'summary', title: 'Summary', columns: ['metric', 'value'], rows: [['calls', 5]] },
  { id: 'topUsers', title: 'Top users', columns: ['user', 'calls'], rows: [['=evil', 3], ['u, 2', null]] },
];

describe('exports of sections', () => {
  it('CSV: the description, then each section after a blank line', () => {
    const csv = sectionsCsv(meta, sections);
    expect(csv).toBe(
      'tokentap export,usage\r\nrange,24h\r\nfrom,2026-11-21T10:00:00.000Z\r\n' +
      'to,2026-11-22T10:00:00.000Z\r\nbucket,auto\r\nfilters.model,gpt-4o\r\n' +
      'generated_at,2026-11-22T10:00:01.000Z\r\n' +
      '\r\nSummary\r\nmetric,value\r\ncalls,5\r\n' +
      '\r\nTop users\r\nuser,calls\r\n\'=evil,3\r\n"u, 2",\r\n');
  });
  it('JSON: the description and rows as objects', () => {
    const j = JSON.parse(sectionsJson(meta, sections, ['tokens']));
    expect(j.tokentap_export).toBe(1);
    expect(j.range).toBe('24h');
    expect(j.filters).toEqual({ model: 'gpt-4o' });
    expect(j.sections[1].rows).toEqual([{ user: '=evil', calls: 3 }, { user: 'u, 2', calls: null }]);
    expect(j.missing).toEqual(['tokens']);
  });
  it('names the file after the view, the range and the day', () => {
    const d = new Date(2026, 10, 22, 23, 59);
    expect(exportFilename('usage', '24h', 'csv', d)).toBe('tokentap-usage-24h-2026-11-22.csv');
    expect(exportFilename('performance', 'custom', 'json', d)).toBe('tokentap-performance-custom-2026-11-22.json');
    expect(exportFilename('a/b', '../x', 'csv', d)).toBe('tokentap-a-b-x-2026-11-22.csv');
  });
});

describe('download', () => {
  afterEach(() => vi.restoreAllMocks());
  it('clicks a temporary <a download> on a Blob URL, then removes it', async () => {
    vi.useFakeTimers();
    let blob = null, clicked = null;
    URL.createObjectURL = vi.fn((b) => ((blob = b), 'blob:x'));
    URL.revokeObjectURL = vi.fn();
    vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function () {
      clicked = { href: this.getAttribute('href'), download: this.download, inDoc: document.body.contains(this) };
    });
    download('a.csv', 'x,y\r\n', 'text/csv');
    expect(clicked).toEqual({ href: 'blob:x', download: 'a.csv', inDoc: true });
    expect(document.querySelector('a[download]')).toBeNull();
    expect(URL.revokeObjectURL).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1000);
    expect(URL.revokeObjectURL).toHaveBeenCalledWith('blob:x');
    vi.useRealTimers();
    expect(blob.type).toBe('text/csv');
    const text = await new Promise((ok) => {
      const fr = new FileReader();
      fr.onload = () => ok(fr.result);
      fr.readAsText(blob);
    });
    expect(text).toBe('x,y\r\n');
  });
});
