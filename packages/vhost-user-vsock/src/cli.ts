/** vmlink-vsockd (placeholder; being built). */
export {};
