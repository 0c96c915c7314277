import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { applyTheme, followSystemTheme, savedTheme } from './lib/theme';

applyTheme(savedTheme());
followSystemTheme();

const app = mount(App, { target: document.getElementById('app')! });

export default app;
