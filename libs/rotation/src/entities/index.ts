// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export const ROTATION_CORE_ENTITIES: Function[] = [];
