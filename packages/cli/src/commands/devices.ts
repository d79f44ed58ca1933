/**
 * `vramseal devices [--backend K] [--json]` — which backend would be used, its devices, their memory,
 * and the residency policy a manager would apply.
 */
import { hostname } from 'node:os';
import {
  DEFAULT_LEAF_SIZE,
  DEFAULT_MAX_MODEL_BYTES,
  DEFAULT_RESERVE_BYTES,
  type DeviceBackend,
  openBackend,
} from '@vramseal/residency';
import type { Command } from 'commander';
import { errorText, formatBytes, printJson, table } from '../output.js';
import { EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE } from '../program.js';

export function register(program: Command): void {
  program
    .command('devices')
    .description('show the device backend, devices, memory and residency policy')
    .option('--backend <kind>', 'auto | cuda | simulated (default: $VRAMSEAL_BACKEND or auto)')
    .option('--json', 'print JSON')
    .action(async (o: { backend?: string; json?: boolean }) => {
      if (o.backend !== undefined && !['auto', 'cuda', 'simulated'].includes(o.backend)) {
        process.stderr.write(
          `vramseal devices: --backend: must be auto, cuda or simulated, got ${JSON.stringify(o.backend)}\n`,
        );
        process.exitCode = EXIT_USAGE;
        return;
      }
      let fallback: string | undefined;
      let backend: DeviceBackend;
      try {
        backend = await openBackend(o.backend as 'auto' | 'cuda' | 'simulated' | undefined, {
          onFallback: (reason) => {
            fallback = reason;
          },
        });
      } catch (err) {
        if (o.json)
          printJson({ ok: false, error: { code: (err as { code?: string }).code, message: errorText(err) } });
        else process.stderr.write(`vramseal devices: ${errorText(err)}\n`);
        process.exitCode = EXIT_CHECK_FAILED;
        return;
      }
      try {
        const devices = await backend.devices();
        const policy = {
          vram_only: true,
          integrated_gpus: 'refused (VRAM-only policy: UMA memory is host memory)',
          max_model_bytes: DEFAULT_MAX_MODEL_BYTES,
          reserve_bytes: DEFAULT_RESERVE_BYTES,
          leaf_size: DEFAULT_LEAF_SIZE,
        };
        // The backend's own VRAM-only policy check, per device (CUDA: refuses integrated/UMA GPUs).
        const verdicts = new Map<number, string>();
        for (const d of devices) {
          try {
            await backend.checkPolicy?.(d.index);
            verdicts.set(d.index, 'ok');
          } catch (err) {
            verdicts.set(d.index, `refused: ${errorText(err)}`);
          }
        }
        const devs = devices.map((d) => ({
          index: d.index,
          name: d.name,
          kind: d.kind,
          total_bytes: d.totalBytes,
          free_bytes: d.freeBytes,
          ...(d.pciBusId ? { pci_bus_id: d.pciBusId } : {}),
          ...(d.computeCapability ? { compute_capability: d.computeCapability } : {}),
          ...(d.driverVersion ? { driver_version: d.driverVersion } : {}),
          ...(d.integrated !== undefined ? { integrated: d.integrated } : {}),
          policy: verdicts.get(d.index) ?? 'ok',
        }));
        if (o.json) {
          printJson({
            ok: true,
            host: hostname(),
            backend: backend.kind,
            ...(fallback ? { fallback_reason: fallback } : {}),
            devices: devs,
            policy,
          });
        } else {
          process.stdout.write(`backend: ${backend.kind}${fallback ? `  (no GPU used: ${fallback})` : ''}\n`);
          if (backend.kind === 'simulated')
            process.stdout.write(
              '         host memory standing in for VRAM (VRAMSEAL_SIM_DEVICES, VRAMSEAL_SIM_VRAM_BYTES)\n',
            );
          process.stdout.write('\n');
          process.stdout.write(
            `${table(
              ['device', 'name', 'total', 'free', 'details', 'policy'],
              devs.map((d) => [
                d.index,
                d.name,
                formatBytes(d.total_bytes),
                formatBytes(d.free_bytes),
                [
                  d.compute_capability ? `sm ${d.compute_capability}` : '',
                  d.pci_bus_id ?? '',
                  d.driver_version ? `driver ${d.driver_version}` : '',
                ]
                  .filter(Boolean)
                  .join(', ') || '-',
                d.policy,
              ]),
            )}\n\n`,
          );
          process.stdout.write(
            `policy:  VRAM only (integrated GPUs refused); max shard ${formatBytes(policy.max_model_bytes)}; reserve ${formatBytes(policy.reserve_bytes)}; digest leaf ${formatBytes(policy.leaf_size)}\n`,
          );
        }
        process.exitCode = devices.length > 0 ? EXIT_OK : EXIT_CHECK_FAILED;
      } finally {
        await backend.close();
      }
    });
}
