// The package's TypeScript declarations (generated from the Rust side) type
// the SDK contract's usage: `tsc --noEmit` over this file is a step of
// scripts/test-sdk, with the declarations themselves checked (no skipLibCheck).
import {
  Myna,
  MynaError,
  type ConnectOptions,
  type ExperimentSnapshot,
  type SyncEvent,
  type Variant,
} from "myna-sdk";

export async function page(uuid: string, snapshot: ExperimentSnapshot): Promise<void> {
  const options: ConnectOptions = {
    apiRoot: "https://ab.example.com",
    apiKey: "…",
    transport: "post",
    batchSize: 20,
    flushIntervalMs: 1000,
    experiments: [snapshot],
  };
  const myna: Myna = await Myna.connect(options);
  const expt = myna.experiment(uuid);
  await myna.load(uuid);
  const variant: Variant = expt.suggest();
  const label: unknown = variant.settings["label"];
  const shown: Variant = expt.view("b");
  const rewarded: boolean = expt.reward(0.5);
  expt.reward();
  expt.unstick();
  const sync: SyncEvent = await myna.flush();
  myna.on("sync", ({ sent, dropped, requeued }: SyncEvent) => void (sent + dropped + requeued));
  myna.on("error", (problem: MynaError) => void problem.messages.map((m) => m.code));
  try {
    expt.reward(7);
  } catch (e) {
    if (e instanceof MynaError) {
      const code: string = e.code;
      const path: string | undefined = e.path;
      const status: number | undefined = e.status;
      void [code, path, status];
    }
  }
  const queued: number = myna.queued;
  myna.close();
  // Pages release handles (wasm-bindgen's classes had `free`; pages call it).
  expt.free();
  myna.free();
  void [label, shown, rewarded, sync, queued, expt.uuid, expt.name, expt.variants, expt.settings];
  // @ts-expect-error: `transport` is "post" or "jsonp"
  await Myna.connect({ apiRoot: "x", apiKey: "k", transport: "pigeon" });
  // @ts-expect-error: `apiKey` is required
  await Myna.connect({ apiRoot: "x" });
}
