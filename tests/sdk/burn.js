// Live-SDK test program (tests/live_sdks.rs runs it with the @pyroscope/nodejs that .ci/run installs, found
// through NODE_PATH): profiles itself with @pyroscope/nodejs and sends to the flamedb at argv[2] as application
// argv[3], burning CPU in flamedbHotNode for ~80% of the run and in flamedbColdNode for the rest, argv[4] seconds,
// flushing every argv[5] ms (default 1000). collectCpuTime adds the cpu sample type the test reads.
'use strict';

const Pyroscope = require('@pyroscope/nodejs');

/** Busy-loops on the CPU for `ms` of wall time; the caller's name is what the profile shows. */
function spin(ms) {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    n = (n * 31 + 7) % 1000003;
  }
  return n;
}

function flamedbHotNode(ms) {
  return spin(ms);
}

function flamedbColdNode(ms) {
  return spin(ms);
}

async function main() {
  const [url, app, seconds, flushMs] = process.argv.slice(2);
  Pyroscope.init({
    serverAddress: url,
    appName: app,
    flushIntervalMs: Number(flushMs || 1000),
    wall: { collectCpuTime: true },
    tags: { test: 'live_sdks' },
  });
  Pyroscope.start();
  const end = performance.now() + Number(seconds) * 1000;
  let rounds = 0;
  // Short rounds, yielding to the event loop after each: the SDK's flush timer and uploads run only
  // then, and it drops a profile that is due while the previous upload is still in flight.
  while (performance.now() < end) {
    flamedbHotNode(8);
    flamedbColdNode(2);
    rounds += 1;
    await new Promise((resolve) => setImmediate(resolve));
  }
  console.log(`burn.js: ${rounds} rounds done, stopping the profiler`);
  await Pyroscope.stop();
  console.log('burn.js: stopped');
}

main().catch((err) => {
  console.error(`burn.js: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
