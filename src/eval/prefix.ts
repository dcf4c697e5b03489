/**
 * Prefix-tree scoring for decoder-only models: the idea of RadixAttention (Zheng et al. 2024,
 * "SGLang: Efficient Execution of Structured Language Model Programs", arXiv:2312.07104) applied
 * to lm-eval's `_loglikelihood_tokens` (lm-evaluation-harness v0.4.x lm_eval/models/huggingface.py).
 *
 * Every request's scored input (context + continuation, left-truncated to max length, last token
 * dropped) is a token sequence from absolute position 0. Keys, values and logits at a position
 * depend only on the tokens up to it, so sequences that agree on their first n tokens agree there
 * too, under every position scheme (learned, RoPE, ALiBi), and a prefix truncated differently
 * starts with other tokens and is never shared. The sequences form a radix tree; each node's
 * tokens run once, after its parent's cached keys and values, and only the positions some request
 * scores go through the LM head and log-softmax (`logitsPositions`).
 *
 * Nodes run in batches: the children of one batch's rows, siblings and cousins, run together,
 * longest first, and a batch closes when padding would become a fifth of its work (PAD_WASTE).
 * Their parents' cache rows are gathered to a left-padded block (each row ends at its own
 * prefix's last token; the padding is masked and position ids come from the mask), the children
 * are right-padded, and the output cache of a batch whose rows have children is kept while
 * their subtrees run, then freed. Kept caches never exceed `budgetBytes`: a node whose cache
 * would not fit is evicted before it runs, i.e. merged into its children, which recompute its
 * tokens from the nearest kept ancestor. A shared run shorter than MIN_SHARED tokens is merged the
 * same way: a separate forward for it would cost more than it saves.
 */
import type { CausalLM, LayerCache } from "../models/types.js";
import { keep, tensor, tidy, type Tensor } from "../tensor/index.js";

/** One sequence to score: `ids` fed from position 0; its last `targets.length` positions predict `targets`. */
export interface ScoredSeq {
  ids: number[];
  targets: number[];
}

export interface PrefixTreeOptions {
  /** Rows per forward. */
  batchSize: number;
  /** lm-eval max length: no forward's past + new tokens exceed it (the learned position table). */
  maxLength: number;
  /** Bytes of key/value cache kept across forwards (transient activations are not counted). */
  budgetBytes: number;
  /** Floats of logits one forward may produce. */
  logitsBudget: number;
  device: string;
}

/** What a run did, for benches and tests. */
export interface PrefixTreeStats {
  forwards: number;
  /** Tokens fed, padding excluded: the tokens the oracle feeds minus what sharing saved. */
  tokens: number;
  /** Nodes merged into their children because their cache did not fit the budget. */
  evicted: number;
  /** Most cache bytes held at once. */
  peakBytes: number;
}

/**
 * Shortest shared run kept as its own node: a forward costs a fixed overhead, and a node this
 * short, recomputed in each child, costs less than it.
 */
export const MIN_SHARED = 8;
/**
 * A batch takes another row only while its padded work stays under this share of its whole work
 * (plus PAD_SLACK tokens' worth): padding costs as much as real tokens, a further forward little
 * more. A row of t new tokens after p past ones costs t·(6·width + p + t): per token and layer,
 * the projections and MLP are ~24·width² flops and attention ~4·width per key.
 */
const PAD_WASTE = 0.2;
const PAD_SLACK = 64;

interface Unit {
  seg: number[];
  /** Absolute position of seg[0]: the parent's prefix length. */
  start: number;
  /** Sequences through this unit (their ids hold seg at start) and those that end with it. */
  reqs: number[];
  ends: number[];
  children: Unit[];
}

/** The radix tree's nodes starting at `start` over sequences `idxs` (all longer than start). */
function build(seqs: ScoredSeq[], idxs: number[], start: number): Unit[] {
  const groups = new Map<number, number[]>();
  for (const i of idxs) {
    const t = seqs[i].ids[start];
    const g = groups.get(t);
    if (g) g.push(i);
    else groups.set(t, [i]);
  }
  return [...groups.values()].map((g) => {
    const ids0 = seqs[g[0]].ids;
    let end = start + 1;
    while (g.every((i) => seqs[i].ids.length > end && seqs[i].ids[end] === ids0[end])) end++;
    return {
      seg: ids0.slice(start, end),
      start,
      reqs: g,
      ends: g.filter((i) => seqs[i].ids.length === end),
      children: build(
        seqs,
        g.filter((i) => seqs[i].ids.length > end),
        end,
      ),
    };
  });
}

/** `u` merged into its children (and a leaf for the sequences that end with it). */
function dissolve(u: Unit): Unit[] {
  const out: Unit[] = u.children.map((c) => ({ ...c, seg: [...u.seg, ...c.seg], start: u.start }));
  if (u.ends.length > 0) out.push({ ...u, reqs: u.ends, children: [] });
  return out;
}

/** Units with short shared runs merged into their children. */
const shareable = (units: Unit[]): Unit[] =>
  units.flatMap((u) =>
    u.children.length > 0 && u.seg.length < MIN_SHARED ? shareable(dissolve(u)) : [u],
  );

/** A batch's output cache and, per row, its left padding and real length. */
interface Batch {
  cache: LayerCache[];
  lead: number[];
  real: number[];
}

interface Row {
  unit: Unit;
  /** Row of the parent batch holding this unit's prefix; -1 at the root. */
  prow: number;
}

const BYTES: Record<string, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2 };

const ids2d = (rows: number[][], device: string): Tensor =>
  tensor(BigInt64Array.from(rows.flat(), BigInt), {
    shape: [rows.length, rows[0].length],
    device,
  });

/**
 * Scores every sequence: the summed log-probability of its targets (float64 over float32 terms)
 * and whether each target is its row's argmax.
 */
export function scorePrefixTree(
  model: CausalLM,
  seqs: ScoredSeq[],
  o: PrefixTreeOptions,
): { logprob: number[]; isGreedy: boolean[]; stats: PrefixTreeStats } {
  const logprob = new Array<number>(seqs.length).fill(0);
  const isGreedy = new Array<boolean>(seqs.length).fill(true);
  const stats: PrefixTreeStats = { forwards: 0, tokens: 0, evicted: 0, peakBytes: 0 };
  if (seqs.length === 0) return { logprob, isGreedy, stats };
  const { device } = o;
  const V = model.config.vocab_size;
  const width = Number(model.config.hidden_size ?? model.config.n_embd ?? 1024);
  const cost = (past: number, t: number) => t * (6 * width + past + t);
  // Cache bytes per token: a one-token forward shows the cache's shape and dtype.
  const perToken = tidy(() => {
    const c = model.forward({
      inputIds: ids2d([[seqs[0].ids[0]]], device),
      useCache: true,
      logitsToKeep: 1,
    }).cache;
    if (!c) throw new Error(`${model.config.model_type}: no cache returned with useCache`);
    return c.reduce((a, { k, v }) => a + (k.numel() + v.numel()) * (BYTES[k.dtype] ?? 4), 0);
  });

  /** Scored positions of `u` (offsets in its seg) with, per position, (sequence, target) pairs. */
  const wanted = (u: Unit): [number, [number, number][]][] => {
    const at = new Map<number, [number, number][]>();
    const end = u.start + u.seg.length;
    for (const r of u.reqs) {
      const { ids, targets } = seqs[r];
      const first = ids.length - targets.length;
      for (let p = Math.max(u.start, first); p < end; p++) {
        const e = at.get(p - u.start);
        const pair: [number, number] = [r, targets[p - first]];
        if (e) e.push(pair);
        else at.set(p - u.start, [pair]);
      }
    }
    return [...at.entries()].sort((a, b) => a[0] - b[0]);
  };

  const run = (pending: Row[], parent: Batch | null, held: number): void => {
    const pastOf = (r: Row) => (parent ? parent.real[r.prow] : 0);
    const total = (r: Row) => pastOf(r) + r.unit.seg.length;
    const sort = () => pending.sort((a, b) => total(b) - total(a)); // stable: tree order on ties
    const plans = new Map<Unit, ReturnType<typeof wanted>>();
    const planOf = (u: Unit) => plans.get(u) ?? plans.set(u, wanted(u)).get(u)!;
    sort();
    while (pending.length > 0) {
      // The longest rows first, as many as fit the batch, max length, logits and cache budgets.
      let [k, P, T, N, withCache] = [0, 0, 0, 0, false]; // N: logits rows
      let work = 0; // cost of the batch's rows without padding
      for (const r of pending) {
        const [nP, nT] = [Math.max(P, pastOf(r)), Math.max(T, r.unit.seg.length)];
        const nWork = work + cost(pastOf(r), r.unit.seg.length);
        const padded = (k + 1) * cost(nP, nT);
        const nN = N + Math.max(1, planOf(r.unit).length);
        const nCache = withCache || r.unit.children.length > 0;
        const fits =
          k + 1 <= o.batchSize &&
          padded - nWork <= PAD_WASTE * padded + cost(0, PAD_SLACK) &&
          nP + nT <= o.maxLength &&
          nN * V <= o.logitsBudget &&
          (!nCache || held + (k + 1) * (nP + nT) * perToken <= o.budgetBytes);
        if (!fits) break;
        [k, P, T, N, withCache, work] = [k + 1, nP, nT, nN, nCache, nWork];
      }
      if (k === 0) {
        const r = pending[0];
        if (r.unit.children.length > 0 && held + total(r) * perToken > o.budgetBytes) {
          // Evicted: its subtree recomputes its tokens from the parent's cache.
          stats.evicted++;
          pending.splice(0, 1, ...dissolve(r.unit).map((unit) => ({ unit, prow: r.prow })));
          sort();
          continue;
        }
        [k, P, T, withCache] = [1, pastOf(r), r.unit.seg.length, r.unit.children.length > 0];
      }
      const chunk = pending.splice(0, k);
      const kept = forward(chunk, parent, P, T, withCache);
      if (!kept) continue;
      const bytes = k * (P + T) * perToken;
      stats.peakBytes = Math.max(stats.peakBytes, held + bytes);
      try {
        const next = chunk.flatMap((r, j) =>
          shareable(r.unit.children).map((unit) => ({ unit, prow: j })),
        );
        run(next, kept, held + bytes);
      } finally {
        for (const { k: kk, v } of kept.cache) {
          kk.dispose();
          v.dispose();
        }
      }
    }

    /** Runs one batch, scores its wanted positions; returns its cache when rows have children. */
    function forward(chunk: Row[], par: Batch | null, P: number, T: number, withCache: boolean) {
      stats.forwards++;
      const K = chunk.length;
      const plans = chunk.map((r) => planOf(r.unit));
      const maskRows = chunk.map((r) => [
        ...new Array<number>(P - pastOf(r)).fill(0),
        ...new Array<number>(pastOf(r) + r.unit.seg.length).fill(1),
        ...new Array<number>(T - r.unit.seg.length).fill(0),
      ]);
      for (const r of chunk) stats.tokens += r.unit.seg.length;
      // The wanted positions, flat (row·T + offset), and per scored target its logits row.
      const positions: number[] = [];
      const flat: [number, number, number][] = []; // (logits row, target, sequence)
      plans.forEach((p, j) =>
        p.forEach(([offset, pairs]) => {
          for (const [r, t] of pairs) flat.push([positions.length, t, r]);
          positions.push(j * T + offset);
        }),
      );
      const padded = maskRows.some((m) => m.includes(0));
      const out = tidy(() => {
        let past: LayerCache[] | null = null;
        if (par && P > 0) {
          // Each row's prefix ends at column end = lead + real of its parent row; the block keeps
          // the P columns before that (columns before 0 or before lead are masked padding).
          const ends = chunk.map((r) => par.lead[r.prow] + par.real[r.prow]);
          const prows = chunk.map((r) => r.prow);
          const onePar = prows.every((p) => p === prows[0]);
          const sameEnd = ends.every((e) => e === ends[0]) && ends[0] >= P;
          const idx = tensor(BigInt64Array.from(prows, BigInt), { device });
          const cols = sameEnd
            ? null
            : ids2d(
                ends.map((e) => Array.from({ length: P }, (_, c) => Math.max(0, e - P + c))),
                device,
              );
          const pick = (t: Tensor): Tensor => {
            const rows = onePar
              ? t.narrow(0, prows[0], 1).expand(K, -1, -1, -1)
              : t.indexSelect(0, idx); // (K, H, width, D)
            if (cols === null) return rows.narrow(2, ends[0] - P, P);
            const [, H, , D] = rows.shape;
            return rows.gather(2, cols.view(K, 1, P, 1).expand(K, H, P, D)); // (K, H, P, D)
          };
          past = par.cache.map(({ k, v }) => ({ k: pick(k), v: pick(v) }));
        }
        const res = model.forward({
          inputIds: ids2d(
            chunk.map((r) => [...r.unit.seg, ...new Array<number>(T - r.unit.seg.length).fill(0)]),
            device,
          ),
          attentionMask: padded ? ids2d(maskRows, device) : null,
          cache: past,
          useCache: withCache,
          // Only the wanted positions; a batch that scores nothing keeps one.
          logitsPositions: tensor(
            BigInt64Array.from(positions.length > 0 ? positions : [0], BigInt),
            { device },
          ),
        });
        if (flat.length > 0) {
          const lp = res.logits.logSoftmax(-1); // (N, V)
          const picked = lp
            .reshape(-1)
            .indexSelect(
              0,
              tensor(
                BigInt64Array.from(flat, ([row, t]) => BigInt(row * V + t)),
                { device },
              ),
            )
            .toNumbers();
          const greedy = lp.argmax(-1).toNumbers();
          flat.forEach(([row, t, r], i) => {
            logprob[r] += picked[i];
            if (greedy[row] !== t) isGreedy[r] = false;
          });
        }
        return withCache ? res.cache!.flatMap(({ k, v }) => [k, v]) : [];
      });
      if (!withCache) return null;
      keep(out);
      const cache: LayerCache[] = [];
      for (let i = 0; i < out.length; i += 2) cache.push({ k: out[i], v: out[i + 1] });
      return {
        cache,
        lead: chunk.map((r) => P - pastOf(r)),
        real: chunk.map((r) => pastOf(r) + r.unit.seg.length),
      };
    }
  };

  run(
    shareable(
      build(
        seqs,
        seqs.map((_, i) => i),
        0,
      ),
    ).map((unit) => ({ unit, prow: -1 })),
    null,
    0,
  );
  return { logprob, isGreedy, stats };
}
