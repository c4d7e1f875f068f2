/** `'--name=value'` quoted in a parse error, as `'--name=…'`: a value typed on the command line may be a secret. */
export function withoutOptionValues(text: string): string {
  return text.replace(/'(--?[A-Za-z0-9][\w-]*)=[^']*'/g, "'$1=…'");
}
