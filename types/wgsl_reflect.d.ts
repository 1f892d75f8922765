// The package's "main" is CommonJS inside a "type": "module" package, so Node's ESM loader
// sees no named exports; we import its ESM build by path and reuse the package's own types.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
