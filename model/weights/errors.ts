// The one error type every weights reader throws for a malformed, hostile or unsupported file.
// Callers (and the fuzz test) rely on it: anything else escaping a reader is a reader bug.

export class WeightsFormatError extends Error {
  override readonly name = 'WeightsFormatError';
  constructor(
    readonly file: string,
    /** Byte offset in the file (or in the named zip entry) where the problem was found; -1 if none applies. */
    readonly offset: number,
    readonly what: string,
  ) {
    super(`${file}${offset >= 0 ? ` @ byte ${offset}` : ''}: ${what}`);
  }
}

/** A saved checkpoint that cannot be used (torn write, missing tensors file, mismatched pair). */
export class CorruptCheckpointError extends Error {
  override readonly name = 'CorruptCheckpointError';
  constructor(readonly file: string, readonly what: string) {
    super(`checkpoint ${file}: ${what}`);
  }
}

/** The checkpoint's config differs from the model it is loaded into; `diffs` says where. */
export class ConfigMismatchError extends Error {
  override readonly name = 'ConfigMismatchError';
  constructor(readonly file: string, readonly diffs: string[]) {
    super(`checkpoint ${file}: config differs from the model's:\n  ${diffs.join('\n  ')}`);
  }
}

/** Loading a state dict found keys or shapes that do not line up; names every one. */
export class StateDictMismatchError extends Error {
  override readonly name = 'StateDictMismatchError';
  constructor(readonly report: { missing: string[]; unexpected: string[]; mismatched: { key: string; fileShape: number[]; modelShape: number[] }[] }) {
    const lines = [
      ...report.missing.map((k) => `missing (in the model, not in the file): ${k}`),
      ...report.unexpected.map((k) => `unexpected (in the file, not in the model): ${k}`),
      ...report.mismatched.map((m) => `shape mismatch: ${m.key}: file [${m.fileShape}] vs model [${m.modelShape}]`),
    ];
    super(`state dict does not match the model (${report.missing.length} missing, ${report.unexpected.length} unexpected, ${report.mismatched.length} shape mismatches):\n  ${lines.join('\n  ')}`);
  }
}
