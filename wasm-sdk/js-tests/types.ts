// The package's TypeScript declarations (generated from the Rust side) type
// the SDK contract's usage: `tsc --noEmit` over this file is a step of
// scripts/test-sdk, with the declarations themselves checked (no skipLibCheck).
import {
  Experiment,
  Myna,
  MynaError,
  type ConnectOptions,
  type Deployment,
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
  // As the README writes them: each listener's argument is typed by its event.
  const onSync = ({ sent, dropped, requeued }: { sent: number; dropped: number; requeued: number }) =>
    void (sent + dropped + requeued);
  myna.on("sync", (s) => void (s.sent + s.dropped + s.requeued));
  myna.on("error", (e) => void e.messages.map((m) => m.code));
  myna.off("sync", onSync);
  // @ts-expect-error: an error listener gets a MynaError, not a SyncEvent
  myna.on("sync", (e: MynaError) => void e.code);
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

// A page started from a deployment form, bound from its markup.
export async function deployed(deployment: Deployment): Promise<void> {
  const { apiRoot, apiKey } = deployment;
  const myna: Myna = await Myna.connect({ apiRoot, apiKey, experiments: deployment });
  await Myna.connect({ apiRoot, apiKey, experiments: deployment.experiments });
  const shown: Record<string, Variant> = myna.bind(document, { navigate: (url: string) => void url });
  myna.bind();
  const id: string | null = myna.experiment("hero").id;
  const hero: Experiment | undefined = myna.experiments["hero"];
  void [shown, id, hero];
  // @ts-expect-error: a deployment's variants are an array
  await Myna.connect({ apiRoot, apiKey, experiments: [{ typename: "experiment", uuid: "u", id: "x", name: "x", variants: 7 }] });
}
