// Builds the chart benchmark page (bench/ui): www/bench/chart.html with the
// app's Chart component.  Not part of the app's build.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [svelte()],
  build: {
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: fileURLToPath(new URL('./chart.html', import.meta.url)) },
  },
});
