import { z } from "zod";

// Zod compiles object parsers with `new Function` and probes for it when a schema is created; under our CSP
// (no 'unsafe-eval') that probe is reported as a violation. Must run before any schema module is evaluated,
// hence its place as the very first import of main.ts.
z.config({ jitless: true });
