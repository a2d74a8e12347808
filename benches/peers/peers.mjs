// Drains N pre-loaded no-op jobs through a peer job queue, by the method of `oclaw bench drain`:
// load N jobs with no worker running, start the workers, and time the first job's start to the
// moment every job is finished. Run by benches/peers/run.sh; see docs/benchmarks.md.
//
//   node peers.mjs graphile --tasks N --processes P --concurrency C [--pg URL]
//   node peers.mjs bullmq   --tasks N --processes P --concurrency C [--redis URL]
//
// Prints one line: `<peer> <tasks/s> <seconds> <settings>`.

import { fork } from "node:child_process";
import { performance } from "node:perf_hooks";

const now = () => performance.timeOrigin + performance.now(); // epoch ms, shared by processes

function args(argv) {
  const o = {
    tasks: 50000,
    processes: 1,
    concurrency: 24,
    pg: process.env.OCLAW_TEST_PG || "postgres://postgres@127.0.0.1:5432/test",
    redis: process.env.OCLAW_TEST_REDIS || "redis://127.0.0.1:6379",
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "");
    if (!(k in o) && k !== "schema" && k !== "queue") throw new Error(`unknown option ${argv[i]}`);
    o[k] = typeof o[k] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The workers: each reports the moment its first job started, on the IPC channel.
async function graphileWorker(o) {
  const { run } = await import("graphile-worker");
  let first = null;
  const runner = await run({
    // graphile-worker's own performance page's settings: 24 concurrent jobs, a pool of 25,
    // a local queue of 500, completions and failures batched with no delay.
    preset: {
      worker: {
        connectionString: o.pg,
        schema: o.schema,
        concurrentJobs: o.concurrency,
        maxPoolSize: o.concurrency + 1,
        localQueue: { size: 500 },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
        pollInterval: 2000,
      },
    },
    noHandleSignals: true,
    logger: await quietLogger(),
    taskList: {
      noop: async () => {
        if (first === null) {
          first = now();
          process.send({ first });
        }
      },
    },
  });
  process.on("message", async (m) => {
    if (m === "stop") {
      await runner.stop();
      process.exit(0);
    }
  });
  process.send({ ready: true });
}

async function bullmqWorker(o) {
  const { Worker } = await import("bullmq");
  let first = null;
  const worker = new Worker(
    o.queue,
    async () => {
      if (first === null) {
        first = now();
        process.send({ first });
      }
    },
    { connection: await redisConnection(o.redis), concurrency: o.concurrency, autorun: true },
  );
  process.on("message", async (m) => {
    if (m === "stop") {
      await worker.close();
      process.exit(0);
    }
  });
  process.send({ ready: true });
}

async function quietLogger() {
  // Warnings and errors still print; graphile-worker's info lines do not.
  const { Logger } = await import("graphile-worker");
  return new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`[graphile-worker] ${message}`);
  });
}

async function redisConnection(url) {
  const { Redis } = await import("ioredis");
  return new Redis(url, { maxRetriesPerRequest: null });
}

// Starts P worker processes, waits until each is ready, then returns the earliest first start.
async function startWorkers(kind, o, extra) {
  const children = [];
  const firsts = [];
  for (let i = 0; i < o.processes; i++) {
    const child = fork(new URL(import.meta.url).pathname, [
      `${kind}-worker`,
      ...Object.entries({ ...o, ...extra }).flatMap(([k, v]) => [`--${k}`, String(v)]),
    ]);
    const ready = new Promise((resolve, reject) => {
      child.on("message", (m) => {
        if (m.ready) resolve();
        if (m.first) firsts.push(m.first);
      });
      child.on("exit", (code) => code && reject(new Error(`${kind} worker exited with ${code}`)));
    });
    children.push({ child, ready });
  }
  await Promise.all(children.map((c) => c.ready));
  return {
    firstStart: () => (firsts.length ? Math.min(...firsts) : null),
    stop: async () => {
      for (const { child } of children) child.send("stop");
      await Promise.all(
        children.map(({ child }) => new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)))),
      );
    },
  };
}

async function graphile(o) {
  const { makeWorkerUtils, runMigrations } = await import("graphile-worker");
  const pg = (await import("pg")).default;
  const schema = `oclaw_peer_gw_${process.pid}`;
  const logger = await quietLogger();
  await runMigrations({ connectionString: o.pg, schema, logger });
  const utils = await makeWorkerUtils({ connectionString: o.pg, schema, logger });
  const client = new pg.Client({ connectionString: o.pg });
  await client.connect();
  try {
    for (let left = o.tasks; left > 0; left -= 10000) {
      const n = Math.min(left, 10000);
      await utils.addJobs(Array.from({ length: n }, (_, i) => ({ identifier: "noop", payload: { i } })));
    }
    const workers = await startWorkers("graphile", o, { schema });
    // Finished jobs are deleted: the drain ends when the table is empty (checked every 5 ms).
    const end = await waitFor(async () => {
      const r = await client.query(`select 1 from "${schema}"._private_jobs limit 1`);
      return r.rowCount === 0;
    });
    const start = workers.firstStart();
    await workers.stop();
    report("graphile-worker 0.17.3", o, start, end, "localQueue 500, completeJobBatchDelay 0");
  } finally {
    await client.query(`drop schema if exists "${schema}" cascade`);
    await client.end();
    await utils.release();
  }
}

async function bullmq(o) {
  const { Queue } = await import("bullmq");
  const name = `oclaw-peer-${process.pid}`;
  const queue = new Queue(name, { connection: await redisConnection(o.redis) });
  try {
    for (let left = o.tasks; left > 0; left -= 10000) {
      const n = Math.min(left, 10000);
      await queue.addBulk(
        Array.from({ length: n }, (_, i) => ({
          name: "noop",
          data: { i },
          opts: { removeOnComplete: true, removeOnFail: true },
        })),
      );
    }
    const workers = await startWorkers("bullmq", o, { queue: name });
    const end = await waitFor(async () => {
      const c = await queue.getJobCounts("waiting", "active", "delayed", "prioritized");
      return Object.values(c).every((v) => v === 0);
    });
    const start = workers.firstStart();
    await workers.stop();
    report("BullMQ 6.7.6", o, start, end, "removeOnComplete");
  } finally {
    await queue.obliterate({ force: true });
    await queue.close();
  }
}

async function waitFor(done) {
  let quiet = now();
  for (;;) {
    if (await done()) return now();
    if (now() - quiet > 120000) throw new Error("no end after 120 s");
    await sleep(5);
  }
}

function report(peer, o, start, end, settings) {
  if (start === null) throw new Error(`${peer}: no job started`);
  const secs = (end - start) / 1000;
  console.log(
    `${peer}\t${Math.round(o.tasks / secs)}\t${secs.toFixed(3)}\t` +
      `${o.processes} process${o.processes === 1 ? "" : "es"} x ${o.concurrency}, ${settings}`,
  );
}

const [cmd, ...rest] = process.argv.slice(2);
const o = args(rest);
const commands = {
  graphile: () => graphile(o),
  bullmq: () => bullmq(o),
  "graphile-worker": () => graphileWorker(o),
  "bullmq-worker": () => bullmqWorker(o),
};
if (!commands[cmd]) {
  console.error("usage: node peers.mjs graphile|bullmq --tasks N --processes P --concurrency C");
  process.exit(2);
}
const driving = cmd === "graphile" || cmd === "bullmq";
commands[cmd]().then(() => driving && process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
