import { VmlinkError } from '@vmlink/errors';

/** `vmlink cp` endpoints: a remote file on an agent, or a local path. */
export type Endpoint = { kind: 'remote'; uri: string; path: string } | { kind: 'local'; path: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):/i;

/** `hvsock:PATH:PORT:/remote`: the first `:PORT` (decimal digits) followed by `:/`. */
const HVSOCK_PORT_THEN_PATH = /:(\d+):\//;

/**
 * Splits `URI:PATH`. The rule: after the scheme's own ':' the remote path starts at the
 * FIRST ':' that is followed by '/'. Transport addresses never contain ':/' (vsock ports
 * are digits, `vsock://3:1024`), so
 *   unix:/tmp/a.sock:/etc/hosts         -> unix:/tmp/a.sock          + /etc/hosts
 *   vsock://3:1024:/var/log/x           -> vsock://3:1024            + /var/log/x
 *   virtio-serial+unix:/q/c.sock:/a:/b  -> virtio-serial+unix:/q/c.sock + /a:/b
 * `hvsock:PATH:PORT` ends with a port, and its PATH may contain ':' (even ':/'), so there
 * the remote path starts after the first `:PORT` that is followed by ':/':
 *   hvsock:/run/v.sock:1024:/etc/hosts  -> hvsock:/run/v.sock:1024   + /etc/hosts
 *   hvsock:/run/a:/v.sock:52:/x         -> hvsock:/run/a:/v.sock:52  + /x
 * (an hvsock argument without `:PORT:/` falls back to the general rule, and the
 * transport then names the URI it cannot use).
 * A remote path may itself contain ':/'; a socket path may not, except as above (use
 * `--uri` then). Returns undefined when the argument is not of that shape (then it is a
 * local path).
 */
export function splitRemoteSpec(arg: string): { uri: string; path: string } | undefined {
  const scheme = SCHEME.exec(arg);
  if (!scheme) return undefined;
  const afterScheme = scheme[0].length;
  if (scheme[1]?.toLowerCase() === 'hvsock') {
    const port = HVSOCK_PORT_THEN_PATH.exec(arg.slice(afterScheme));
    if (port) {
      const split = afterScheme + port.index + port[0].length - 2; // the ':' before '/'
      return { uri: arg.slice(0, split), path: arg.slice(split + 1) };
    }
  }
  // `vsock://` starts with '//' right after the scheme: skip it so it is not taken as ':/'.
  const searchFrom = arg.startsWith('//', afterScheme) ? afterScheme + 2 : afterScheme;
  const split = arg.indexOf(':/', searchFrom);
  if (split < 0) return undefined;
  const uri = arg.slice(0, split);
  const path = arg.slice(split + 1);
  if (uri.length <= afterScheme) return undefined;
  return { uri, path };
}

/**
 * Classifies a `cp` argument. With `--uri`, a leading ':' marks the remote side
 * (`--uri unix:/a:b.sock cp :/etc/hosts ./hosts`); without it, `URI:/PATH` does. A local
 * path that looks like a URI can be written `./name`.
 */
export function parseEndpoint(arg: string, explicitUri: string | undefined): Endpoint {
  if (explicitUri !== undefined) {
    if (arg.startsWith(':')) return { kind: 'remote', uri: explicitUri, path: arg.slice(1) || '/' };
    return { kind: 'local', path: arg };
  }
  if (arg.startsWith('/') || arg.startsWith('./') || arg.startsWith('../')) return { kind: 'local', path: arg };
  const remote = splitRemoteSpec(arg);
  return remote ? { kind: 'remote', ...remote } : { kind: 'local', path: arg };
}

export interface CopyPlan {
  readonly direction: 'download' | 'upload';
  readonly uri: string;
  readonly remotePath: string;
  readonly localPath: string;
}

/** Exactly one side of a copy must be remote. */
export function planCopy(src: string, dst: string, explicitUri: string | undefined): CopyPlan {
  const from = parseEndpoint(src, explicitUri);
  const to = parseEndpoint(dst, explicitUri);
  if (from.kind === 'remote' && to.kind === 'local') {
    return { direction: 'download', uri: from.uri, remotePath: from.path, localPath: to.path };
  }
  if (from.kind === 'local' && to.kind === 'remote') {
    return { direction: 'upload', uri: to.uri, remotePath: to.path, localPath: from.path };
  }
  const which = from.kind === 'remote' ? 'both SRC and DST are remote' : 'neither SRC nor DST is remote';
  throw new VmlinkError(
    'ERR_VMLINK_USAGE',
    `cp needs exactly one remote side (URI:/PATH, or :PATH with --uri); ${which}: '${src}' '${dst}'`,
  );
}
