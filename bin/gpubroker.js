#!/usr/bin/env node
// Thin launcher: registers the TypeScript loader, then hands over to the dispatcher.
import { register } from 'tsx/esm/api';

register();
await import('./gpubroker.ts');
