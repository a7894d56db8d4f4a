// Preloaded into pgrouter (node --expose-gc --import) by bench/idle-memory.ts only: a full
// garbage collection on SIGUSR2, so that RSS readings are not at the mercy of GC timing.
process.on('SIGUSR2', () => globalThis.gc?.());
