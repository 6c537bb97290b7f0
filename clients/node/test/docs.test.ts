/**
 * Every export of the package, and every public member of an exported class or
 * interface, carries a TypeDoc comment (checked with the TypeScript compiler's
 * own view of the doc comments, as TypeDoc reads them).
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { test } from "node:test";
import ts from "typescript";
import { NODE_DIR } from "./helpers.js";

function undocumented(): string[] {
  const index = resolve(NODE_DIR, "src", "index.ts");
  const program = ts.createProgram([index], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    types: ["node"],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(index);
  assert.ok(source, "src/index.ts");
  const module = checker.getSymbolAtLocation(source);
  assert.ok(module, "src/index.ts is a module");
  const doc = (s: ts.Symbol): string => ts.displayPartsToString(s.getDocumentationComment(checker)).trim();
  const missing: string[] = [];
  for (const exported of checker.getExportsOfModule(module)) {
    const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    if (doc(sym) === "") missing.push(exported.getName());
    for (const decl of sym.declarations ?? []) {
      if (!ts.isClassDeclaration(decl) && !ts.isInterfaceDeclaration(decl)) continue;
      for (const member of decl.members) {
        if (ts.isConstructorDeclaration(member) || member.name === undefined || ts.isPrivateIdentifier(member.name)) continue;
        const modifiers = ts.canHaveModifiers(member) ? (ts.getModifiers(member) ?? []) : [];
        if (modifiers.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword)) continue;
        const m = checker.getSymbolAtLocation(member.name);
        if (m !== undefined && doc(m) === "") missing.push(`${exported.getName()}.${m.getName()}`);
      }
    }
  }
  return missing;
}

test("every export and public member has a TypeDoc comment", () => {
  assert.deepEqual(undocumented(), []);
});
