import { VmlinkError } from './errors.js';

export function isLinux(platform: string = process.platform): boolean {
  return platform === 'linux';
}

export function unsupportedPlatform(feature: string, platform: string = process.platform): VmlinkError {
  return new VmlinkError(
    'ERR_VMLINK_UNSUPPORTED_PLATFORM',
    `${feature} needs Linux; this platform is '${platform}'`,
  );
}

/** Throws ERR_VMLINK_UNSUPPORTED_PLATFORM unless `platform` is Linux. */
export function assertLinux(feature: string, platform: string = process.platform): void {
  if (!isLinux(platform)) throw unsupportedPlatform(feature, platform);
}
