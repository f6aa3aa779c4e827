/**
 * V8 flags the server runs with: package.json's `start` script, infra/Dockerfile and the benchmarks' server
 * children pass them on the command line (V8 sizes its heap when the process starts, so the server cannot set
 * them itself; `NODE_OPTIONS` takes them too). A test checks that every place says the same.
 *
 * A young generation of 64 MB per semi-space (V8's default here: 16): a busy node allocates a few hundred MB a
 * second in short-lived objects (frames, packets, parsed events). With the default, a scavenge ran 10–20 times
 * a second, 5–10 ms each on the event loop, and a large share of the fan-out's CPU went to them; the runs with
 * and without are in docs/BENCHMARKS.md. The young generation grows to its maximum only while allocation is
 * that fast, and so does the memory it costs.
 */
export const SERVER_NODE_FLAGS = ["--max-semi-space-size=64"] as const;
