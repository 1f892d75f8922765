import type { BenchCase } from './harness.ts';
export function extraCases(_size: 'small' | 'full'): BenchCase[] {
  return [];
}
