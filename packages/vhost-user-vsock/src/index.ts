/** @vmlink/vhost-user-vsock: a virtio-vsock device served over vhost-user (placeholder; being built). */
export {};
