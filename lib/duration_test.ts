import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import {
  formatGoDuration,
  formatGoDurationNs,
  parseGoDuration,
  parseGoDurationNs,
} from "./duration.ts";

const ns = 1n;
const us = 1000n * ns;
const ms = 1000n * us;
const s = 1000n * ms;
const m = 60n * s;
const h = 60n * m;

// Go's own table (time_test.go, parseDurationTests).
const parseCases: [string, bigint][] = [
  ["0", 0n],
  ["5s", 5n * s],
  ["30s", 30n * s],
  ["1478s", 1478n * s],
  // sign
  ["-5s", -5n * s],
  ["+5s", 5n * s],
  ["-0", 0n],
  ["+0", 0n],
  // decimal
  ["5.0s", 5n * s],
  ["5.6s", 5n * s + 600n * ms],
  ["5.s", 5n * s],
  [".5s", 500n * ms],
  ["1.0s", 1n * s],
  ["1.00s", 1n * s],
  ["1.004s", 1n * s + 4n * ms],
  ["1.0040s", 1n * s + 4n * ms],
  ["100.00100s", 100n * s + 1n * ms],
  // different units
  ["10ns", 10n * ns],
  ["11us", 11n * us],
  ["12\u00b5s", 12n * us],
  ["12\u03bcs", 12n * us],
  ["13ms", 13n * ms],
  ["14s", 14n * s],
  ["15m", 15n * m],
  ["16h", 16n * h],
  // composite durations
  ["3h30m", 3n * h + 30n * m],
  ["10.5s4m", 4n * m + 10n * s + 500n * ms],
  ["-2m3.4s", -(2n * m + 3n * s + 400n * ms)],
  ["1h2m3s4ms5us6ns", 1n * h + 2n * m + 3n * s + 4n * ms + 5n * us + 6n * ns],
  ["39h9m14.425s", 39n * h + 9n * m + 14n * s + 425n * ms],
  // large value
  ["52763797000ns", 52763797000n * ns],
  // more than 9 digits after decimal point, see https://golang.org/issue/6617
  ["0.3333333333333333333h", 20n * m],
  // 9007199254740993 = 1<<53+1 cannot be stored precisely in a float64
  ["9007199254740993ns", (1n << 53n) + 1n],
  // largest duration that can be represented by int64 in nanoseconds
  ["9223372036854775807ns", (1n << 63n) - 1n],
  ["9223372036854775.807us", (1n << 63n) - 1n],
  ["9223372036s854ms775us807ns", (1n << 63n) - 1n],
  ["-9223372036854775808ns", -(1n << 63n)],
  ["-9223372036854775.808us", -(1n << 63n)],
  ["-9223372036s854ms775us808ns", -(1n << 63n)],
  // largest negative round trip value, see https://golang.org/issue/48629
  ["-2562047h47m16.854775808s", -(1n << 63n)],
  // huge string; issue 15011.
  ["0.100000000000000000000h", 6n * m],
  // This value tests the first overflow check in leadingFraction.
  ["0.830103483285477580700h", 49n * m + 48n * s + 372539827n * ns],
  // the examples the flags use
  ["300ms", 300n * ms],
  ["1.5s", 1500n * ms],
  ["1m30s", 90n * s],
  ["2h", 2n * h],
];

for (const [input, want] of parseCases) {
  Deno.test(`parseGoDurationNs(${JSON.stringify(input)})`, () => {
    assertEquals(parseGoDurationNs(input), want);
  });
}

// Go's own table (parseDurationErrorTests) plus a few more.
const errorCases: [string, RegExp][] = [
  ["", /invalid duration ""/],
  ["3", /missing unit in duration "3"/],
  ["-", /invalid duration "-"/],
  ["s", /invalid duration "s"/],
  [".", /invalid duration "\."/],
  ["-.", /invalid duration "-\."/],
  [".s", /invalid duration "\.s"/],
  ["+.s", /invalid duration "\+\.s"/],
  ["1d", /unknown unit "d" in duration "1d"/],
  ["\x85\x85", /invalid duration/],
  ["\xffff", /invalid duration/],
  ["hello \xffff world", /invalid duration/],
  ["9223372036854775808ns", /out of range/],
  ["9223372036854775.808us", /out of range/],
  ["9223372036854ms775us808ns", /out of range/],
  ["-9223372036854775809ns", /out of range/],
  ["1", /missing unit in duration "1"/],
  ["00", /missing unit/],
  ["1 s", /unknown unit " s"/],
  ["1e3s", /unknown unit "e"/],
  ["1.5.5s", /missing unit/],
  [" 1s", /invalid duration/],
  ["1s ", /unknown unit "s "/],
  ["--1s", /invalid duration/],
  ["1S", /unknown unit "S"/],
  ["99999999999999999999h", /out of range/],
  ["3000000h", /out of range/],
];

for (const [input, want] of errorCases) {
  Deno.test(`parseGoDurationNs(${JSON.stringify(input)}) throws`, () => {
    let err: unknown;
    try {
      parseGoDurationNs(input);
    } catch (e) {
      err = e;
    }
    assert(err instanceof RangeError, `expected a RangeError for ${JSON.stringify(input)}`);
    assertMatch(err.message, want);
    assert(!err.message.includes("\n"), "one line");
  });
}

Deno.test("parseGoDuration returns milliseconds", () => {
  assertEquals(parseGoDuration("1s"), 1000);
  assertEquals(parseGoDuration("300ms"), 300);
  assertEquals(parseGoDuration("1.5s"), 1500);
  assertEquals(parseGoDuration("1m30s"), 90000);
  assertEquals(parseGoDuration("1500us"), 1.5);
  assertEquals(parseGoDuration("1ns"), 0.000001);
  assertEquals(parseGoDuration("0"), 0);
  assertEquals(parseGoDuration("-2h"), -7200000);
});

// Go's own table (time_test.go, durationTests).
const formatCases: [string, bigint][] = [
  ["0s", 0n],
  ["1ns", 1n * ns],
  ["1.1\u00b5s", 1100n * ns],
  ["2.2ms", 2200n * us],
  ["3.3s", 3300n * ms],
  ["4m5s", 4n * m + 5n * s],
  ["4m5.001s", 4n * m + 5001n * ms],
  ["5h6m7.001s", 5n * h + 6n * m + 7001n * ms],
  ["8m0.000000001s", 8n * m + 1n * ns],
  ["2562047h47m16.854775807s", (1n << 63n) - 1n],
  ["-2562047h47m16.854775808s", -(1n << 63n)],
  ["1h0m0s", 1n * h],
  ["-1s", -1n * s],
  ["999ns", 999n],
];

for (const [want, input] of formatCases) {
  Deno.test(`formatGoDurationNs(${input}) = ${want}`, () => {
    assertEquals(formatGoDurationNs(input), want);
    // Every formatted value parses back to itself.
    assertEquals(parseGoDurationNs(want), input);
  });
}

Deno.test("formatGoDuration takes milliseconds", () => {
  assertEquals(formatGoDuration(1000), "1s");
  assertEquals(formatGoDuration(300), "300ms");
  assertEquals(formatGoDuration(90000), "1m30s");
  assertEquals(formatGoDuration(0), "0s");
  assertEquals(formatGoDuration(1.5), "1.5ms");
  assertEquals(formatGoDuration(0.001), "1\u00b5s");
  assertEquals(formatGoDuration(-1000), "-1s");
  assertEquals(formatGoDuration(3600000), "1h0m0s");
  assertEquals(formatGoDuration(NaN), "NaN");
});

Deno.test("format/parse round trip over seeded random values", () => {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed;
  };
  for (let i = 0; i < 500; i++) {
    const value = BigInt(rand()) * BigInt(rand()) * (i % 2 === 0 ? 1n : -1n);
    assertEquals(parseGoDurationNs(formatGoDurationNs(value)), value);
  }
});
