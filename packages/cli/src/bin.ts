#!/usr/bin/env node
console.error('vramseal: CLI under construction');
process.exit(2);
