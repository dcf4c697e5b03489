/**
 * The command line as people expect it (src/cli/main.ts, commands.ts, flags.ts), in-process
 * through `main()`: --help, -h, `lethe help [CMD]` on every command (exit 0, its own usage on
 * stdout, every option with its default); --version; usage errors exit 2 with the closest option
 * or command suggested; a failure of the work exits 1; the README's tables are the ones
 * commands.ts prints. Real exit statuses and signals of `node bin/lethe.js`: bin.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { main } from "../../src/cli/main.js";
import {
  COMMANDS,
  commandTable,
  EXIT_CODES,
  exitCodeTable,
  helpCommand,
  type CommandName,
} from "../../src/cli/commands.js";
import { helpText, type OptionSpec } from "../../src/cli/flags.js";
import { repoRoot } from "../helpers/data.js";
import { capture } from "../helpers/capture.js";

const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
  version: string;
};
const NAMES = Object.keys(COMMANDS) as CommandName[];
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

const lethe = (...argv: string[]) => capture(() => main(argv));

test("every command answers --help, -h and `lethe help CMD`: exit 0, its own usage on stdout", async () => {
  assert.deepEqual(NAMES, [
    ...["study", "demo", "logits", "generate", "eval", "run", "plan", "resume", "status"],
    ...["serve", "export", "submit", "run-one", "cancel", "report"],
    ...["compare", "doctor", "help"],
  ]);
  for (const name of NAMES) {
    const spec = COMMANDS[name];
    const want = helpText(name, spec);
    assert.ok(want.startsWith(`usage: lethe ${name}`), want);
    for (const argv of [
      [name, "--help"],
      [name, "-h"],
      ["help", name],
      ["--help", name],
    ]) {
      const r = await lethe(...argv);
      assert.equal(r.code, 0, `lethe ${argv.join(" ")}: ${r.err}`);
      assert.equal(r.err, "", argv.join(" "));
      assert.equal(r.out, want, argv.join(" "));
    }
    // Every option, with its default; -h/--help on every command.
    const options = Object.entries(spec.options as Record<string, OptionSpec>);
    for (const [k, o] of options) {
      const line = want.split("\n").find((l) => new RegExp(`^  (-\\w, )?--${k}\\b`).test(l));
      assert.ok(line, `lethe ${name} --help lists --${k}:\n${want}`);
      assert.ok(line.includes(o.help), line);
      const def = o.default ?? o.defaultText;
      if (def !== undefined) assert.ok(line.includes(`default: ${def}`), line);
      if (o.required) assert.ok(line.includes("required"), line);
    }
    assert.match(want, /^ {2}-h, --help +print this help$/m);
    assert.ok(!("help" in spec.options), `${name}: --help is every command's own`);
  }
  // A command's own code answers --help too (a direct call, as the tests of each command make).
  const own = await capture(() => helpCommand(["--help"]));
  assert.equal(own.code, 0);
  assert.equal(own.out, helpText("help", COMMANDS.help));
});

test("a command's function answers --help itself, without running", async () => {
  const modules: [CommandName, () => Promise<(argv: string[]) => Promise<number>>][] = [
    ["study", async () => (await import("../../src/cli/study.js")).studyCommand],
    ["demo", async () => (await import("../../src/cli/demo.js")).demoCommand],
    ["logits", async () => (await import("../../src/cli/model.js")).logitsCommand],
    ["generate", async () => (await import("../../src/cli/model.js")).generateCommand],
    ["eval", async () => (await import("../../src/cli/eval.js")).evalCommand],
    ["run", async () => (await import("../../src/cli/run.js")).runCommand],
    ["resume", async () => (await import("../../src/cli/run.js")).resumeCommand],
    ["status", async () => (await import("../../src/cli/run.js")).statusCommand],
    ["report", async () => (await import("../../src/cli/report.js")).reportCommand],
    ["compare", async () => (await import("../../src/cli/report.js")).compareCommand],
    ["doctor", async () => (await import("../../src/cli/doctor.js")).doctorCommand],
  ];
  for (const [name, load] of modules) {
    const fn = await load();
    const r = await capture(() => fn(["-h"]));
    assert.equal(r.code, 0, name);
    assert.equal(r.out, helpText(name, COMMANDS[name]), name);
  }
});

test("lethe, lethe --help, -h, help: the commands, how to get a command's help, exit statuses", async () => {
  const first = await lethe("--help");
  assert.equal(first.code, 0);
  assert.equal(first.err, "");
  assert.match(first.out, new RegExp(`^lethe ${esc(pkg.version)}: `));
  for (const name of NAMES)
    assert.match(first.out, new RegExp(`^ {2}${name} +${esc(COMMANDS[name].summary)}$`, "m"));
  assert.match(first.out, /lethe COMMAND --help/);
  for (const [code] of EXIT_CODES) assert.match(first.out, new RegExp(`^ {2}${code} `, "m"));
  for (const argv of [["-h"], ["help"], []]) {
    const r = await lethe(...argv);
    assert.equal(r.code, 0, argv.join(" "));
    assert.equal(r.out, first.out, argv.join(" "));
  }
});

test("--version prints package.json's version first; --verbose adds NCCL, Gloo, build flags", async () => {
  for (const flag of ["--version", "-V"]) {
    const r = await lethe(flag);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.split("\n")[0], `lethe ${pkg.version}`);
    assert.match(r.out, /^libtorch \S+ \(built against\), \S+ \(loaded\)$/m);
    assert.doesNotMatch(r.out, /^NCCL /m);
  }
  const v = await lethe("--version", "--verbose");
  assert.equal(v.code, 0, v.err);
  assert.equal(v.out.split("\n")[0], `lethe ${pkg.version}`);
  assert.match(v.out, /^NCCL (compiled in|not compiled in|unknown) \(libtorch USE_NCCL=\S+\)$/m);
  assert.match(v.out, /^Gloo (compiled in|not compiled in|unknown) \(libtorch USE_GLOO=\S+\)$/m);
  const addon = resolve(process.env.LETHE_ADDON ?? join(repoRoot, "build", "lethe.node"));
  assert.ok(v.out.includes(`\naddon ${addon}\n`), v.out);
  if (existsSync(`${addon}.flags`))
    assert.ok(
      v.out.includes(`\naddon build flags: ${readFileSync(`${addon}.flags`, "utf8").trim()}\n`),
    );
  const doctor = await lethe("doctor");
  assert.equal(doctor.code, 0);
  assert.equal(
    doctor.out.split("\n").slice(0, 8).join("\n"),
    v.out.split("\n").slice(0, 8).join("\n"),
  );
});

test("usage errors exit 2 and name the mistake on stderr, with a suggestion and the usage", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["generate", "--model", "m", "--max-new-token", "3"],
      /^lethe generate: Unknown option '--max-new-token'\. Did you mean "--max-new-tokens"\?\nusage: lethe generate --model DIR \(--prompt TEXT \| --inputs IN\.safetensors\) --max-new-tokens N \[options\]\n`lethe generate --help` lists every option\n$/,
    ],
    [["eval", "--batchsize", "4"], /Unknown option '--batchsize'\. Did you mean "--batch-size"\?/],
    [["report", "x", "--outt", "y"], /Did you mean "--out"\?/],
    [["--verison"], /^lethe: Unknown option '--verison'\. Did you mean "--version"/],
    [
      ["stauts"],
      /^lethe: unknown command "stauts"\. Did you mean "status"\?\n`lethe --help` lists the commands\n$/,
    ],
    [["help", "evl"], /unknown command "evl"\. Did you mean "eval"\?/],
    [["eval", "--tasks", "piqa"], /^lethe eval: --model is required\nusage: lethe eval --model /],
    [["logits", "--model", "m", "--inputs", "i"], /--out is required/],
    [["run"], /^lethe run: missing CONFIG\.yaml\nusage: lethe run CONFIG\.yaml \[options\]/],
    [["resume", "a", "b"], /expected one DIR, got 2/],
    [["report", "a", "b"], /expected one RUN_DIR, got 2/],
    [["doctor", "now"], /unexpected argument "now"/],
    [
      ["study", "--preset", "quik"],
      /--preset must be one of default, quick, full, got "quik"\. Did you mean "quick"\?/,
    ],
    [["run", "x.yaml", "--out"], /lethe run: Option '--out <value>' argument missing/],
    [["status", "--json=yes"], /lethe status: Option '--json' does not take an argument/],
    [["--verbose"], /--verbose goes with --version/],
    // Bad values, found by the command's own code (after it loads).
    [
      ["demo", "--seconds", "soon"],
      /^lethe demo: --seconds must be a number, got "soon"\nusage: lethe demo/,
    ],
    [["demo", "--seed=-1"], /--seed must be an integer >= 0, got "-1"/],
    [["demo", "--seed", "-1"], /Option .--seed. argument is ambiguous/],
    [
      ["generate", "--model", "m", "--prompt", "p", "--inputs", "i", "--max-new-tokens", "2"],
      /give exactly one of --prompt and --inputs/,
    ],
    [
      ["generate", "--model", "m", "--prompt", "p", "--max-new-tokens", "2", "--seed", "1"],
      /--seed needs --sample/,
    ],
    [
      [
        "eval",
        "--model",
        "m",
        "--tasks",
        "piqa",
        "--data-dir",
        "d",
        "--output",
        "o.json",
        "--shots",
        "x",
      ],
      /--shots must be an integer >= 0, got "x"/,
    ],
  ];
  for (const [argv, want] of cases) {
    const r = await lethe(...argv);
    assert.equal(r.code, 2, `lethe ${argv.join(" ")}: ${r.err}`);
    assert.equal(r.out, "", argv.join(" "));
    assert.match(r.err, want, argv.join(" "));
  }
});

test("a failure of the work exits 1 with the command's name and the message", async () => {
  const missing = join(repoRoot, "no-such-study-folder");
  const resume = await lethe("resume", missing);
  assert.equal(resume.code, 1);
  assert.equal(resume.err, `lethe resume: ${missing}: no such directory\n`);
  const status = await lethe("status", join(repoRoot, "src"));
  assert.equal(status.code, 1);
  assert.match(
    status.err,
    /^lethe status: .*src: neither a run \(no config\.yaml\) nor a study \(no study\.yaml\)\n$/,
  );
});

test("the README's command and exit-status tables are the ones commands.ts prints", async () => {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const block = (tag: string) =>
    new RegExp(
      `<!-- ${tag}: generated by \`lethe help --markdown\`[^\\n]*-->\\n\\n([\\s\\S]*?)\\n<!-- /${tag} -->`,
    ).exec(readme)?.[1];
  const fix = "run `node bin/lethe.js help --markdown` and paste its tables into README.md";
  assert.equal(block("commands"), commandTable(), fix);
  assert.equal(block("exit-status"), exitCodeTable(), fix);
  for (const name of NAMES) assert.ok(commandTable().includes(`\`lethe ${name}`), name);
  const md = await lethe("help", "--markdown");
  assert.equal(md.code, 0);
  assert.equal(md.out, `${commandTable()}\n${exitCodeTable()}`);
});

test("study's presets are the ones src/mini/study.ts defines, with their descriptions", async () => {
  const { PRESETS } = await import("../../src/mini/study.js");
  assert.deepEqual([...COMMANDS.study.options.preset.choices], Object.keys(PRESETS));
  const help = helpText("study", COMMANDS.study);
  for (const [name, p] of Object.entries(PRESETS))
    assert.match(help, new RegExp(`^ {2}${name} +${esc(p.description)}$`, "m"));
});
