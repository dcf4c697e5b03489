import { writeStudy } from "./synthetic.js";
import { writeReport, compareRuns } from "../../src/report/index.js";
import { rmSync } from "node:fs";
rmSync("/tmp/rp/study", { recursive: true, force: true });
writeStudy("/tmp/rp/study");
console.time("report");
console.log(await writeReport(["/tmp/rp/study"]));
console.timeEnd("report");
console.log(compareRuns(["/tmp/rp/study/runs/bloomz-560m-full-s0", "/tmp/rp/study/runs/mt0-xl-full-s0"]));
