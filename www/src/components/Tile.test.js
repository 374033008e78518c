import { flushSync, mount, unmount } from 'svelte';
import { describe, expect, it } from 'vitest';
import Tile from './Tile.svelte';
import Sparkline from './Sparkline.svelte';

describe('Tile', () => {
  it('shows its label, value and a sparkline of the series', () => {
    const target = document.createElement('div');
    const c = mount(Tile, { target, props: { label: 'Requests / s', value: '12.5', series: [1, 3, 2], testid: 't' } });
    flushSync();
    expect(target.querySelector('h3').textContent).toBe('Requests / s');
    expect(target.querySelector('.value').textContent).toBe('12.5');
    const pts = target.querySelector('polyline').getAttribute('points').split(' ');
    expect(pts.length).toBe(3);
    unmount(c);
  });
});

describe('Sparkline', () => {
  it('scales to its own range, highest value at the top', () => {
    const target = document.createElement('div');
    const c = mount(Sparkline, { target, props: { values: [0, 10], width: 100, height: 28 } });
    flushSync();
    const [a, b] = target.querySelector('polyline').getAttribute('points').split(' ');
    expect(a).toBe('0.0,27.0');
    expect(b).toBe('100.0,1.0');
    unmount(c);
  });
  it('draws nothing with fewer than two points', () => {
    const target = document.createElement('div');
    const c = mount(Sparkline, { target, props: { values: [5] } });
    flushSync();
    expect(target.querySelector('polyline')).toBeNull();
    unmount(c);
  });
});
