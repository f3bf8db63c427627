import { defineConfig } from 'drizzle-kit';

/** `npx drizzle-kit generate` writes a migration for changes to the schema; the broker applies them on start. */
export default defineConfig({
  dialect: 'postgresql',
  schema: ['./broker/db/schema.ts', './runtime/meter/schema.ts'],
  out: './broker/db/migrations',
});
