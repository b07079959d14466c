// Runs INSIDE the guest, in the background: the compliance peer on vsock://any:PORT,
// which the host dials through the device as hvsock:<vsockPath>:PORT (the host retries
// until this listens: before that the device closes without OK).
import { servePeer } from '@vmlink/compliance/transport';
import { vsock } from '@vmlink/transport-vsock';

const [port] = process.argv.slice(2);
const listener = await vsock().listen(`vsock://any:${port}`);
servePeer(listener);
